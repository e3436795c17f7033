/*=========================================================================
 *
 *  Copyright NumFOCUS
 *
 *  Licensed under the Apache License, Version 2.0 (the "License");
 *  you may not use this file except in compliance with the License.
 *  You may obtain a copy of the License at
 *
 *         http://www.apache.org/licenses/LICENSE-2.0.txt
 *
 *  Unless required by applicable law or agreed to in writing, software
 *  distributed under the License is distributed on an "AS IS" BASIS,
 *  WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 *  See the License for the specific language governing permissions and
 *  limitations under the License.
 *
 *=========================================================================*/
#include "itkKDBrainExtractionBoundaryRefinement.h"

#include "itkBinaryThresholdImageFilter.h"
#include "itkKDBrainExtractionTorchModel.h"
#include "itkMultiThreaderBase.h"
#include "itkSignedMaurerDistanceMapImageFilter.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace itk
{
namespace
{
// Feature neighbourhoods, in fine voxels: radius and step of each cube.
constexpr int FineIntensityRadius = 2;   // 5x5x5 at step 1
constexpr int WideIntensityStep = 3;     // 3x3x3 at step 3
constexpr int WiderIntensityStep = 6;    // 3x3x3 at step 6
constexpr int CoarseProbabilityStep = 2; // 3x3x3 at step 2
// The farthest any feature reaches from its point, in fine voxels.
constexpr int FeatureReach = WiderIntensityStep;

/** Buffer offsets of a (2 radius + 1)^3 cube of voxels \a step apart. */
std::vector<std::ptrdiff_t>
CubeOffsets(int radius, int step, const std::array<std::ptrdiff_t, 3> & strides)
{
  std::vector<std::ptrdiff_t> offsets;
  for (int z = -radius; z <= radius; ++z)
  {
    for (int y = -radius; y <= radius; ++y)
    {
      for (int x = -radius; x <= radius; ++x)
      {
        offsets.push_back(step * (x * strides[0] + y * strides[1] + z * strides[2]));
      }
    }
  }
  return offsets;
}
} // namespace

bool
KDBrainExtractionBoundaryRefinement::IsFinerThanWorkingGrid(
  const GridType * input, const KDBrainExtractionPreprocessing::Contract & coarseContract)
{
  // The input's spacing along each physical axis: the length of the physical
  // step of one voxel along the index axis that maps closest to it.
  const auto & direction = input->GetDirection();
  const auto & spacing = input->GetSpacing();
  for (unsigned int axis = 0; axis < 3; ++axis)
  {
    unsigned int closest = 0;
    for (unsigned int column = 1; column < 3; ++column)
    {
      if (std::abs(direction[axis][column]) > std::abs(direction[axis][closest]))
      {
        closest = column;
      }
    }
    if (spacing[closest] < 0.75 * coarseContract.WorkingSpacing[axis])
    {
      return true;
    }
  }
  return false;
}

KDBrainExtractionBoundaryRefinement::FineVolumes
KDBrainExtractionBoundaryRefinement::PrepareFineVolumes(const ImageType * image, const IntensityWindow & window,
                                                        const ImageType * coarseProbability, double fineSpacing)
{
  if (!(fineSpacing > 0.0))
  {
    itkGenericExceptionMacro(<< "the fine spacing must be positive, not " << fineSpacing);
  }
  // The coarse mask's box, in physical units (the working grid is axis-aligned).
  const auto          coarseRegion = coarseProbability->GetLargestPossibleRegion();
  const auto          coarseSize = coarseRegion.GetSize();
  const float *       coarse = coarseProbability->GetBufferPointer();
  std::array<long, 3> lowest{
    { std::numeric_limits<long>::max(), std::numeric_limits<long>::max(), std::numeric_limits<long>::max() }
  };
  std::array<long, 3> highest{ { -1, -1, -1 } };
  std::size_t         offset = 0;
  for (long z = 0; z < static_cast<long>(coarseSize[2]); ++z)
  {
    for (long y = 0; y < static_cast<long>(coarseSize[1]); ++y)
    {
      for (long x = 0; x < static_cast<long>(coarseSize[0]); ++x, ++offset)
      {
        if (coarse[offset] >= 0.5f)
        {
          const std::array<long, 3> index{ { x, y, z } };
          for (unsigned int d = 0; d < 3; ++d)
          {
            lowest[d] = std::min(lowest[d], index[d]);
            highest[d] = std::max(highest[d], index[d]);
          }
        }
      }
    }
  }
  if (highest[0] < 0)
  {
    itkGenericExceptionMacro(<< "no brain was found on the working grid: there is no boundary to refine");
  }
  const auto &         coarseSpacing = coarseProbability->GetSpacing();
  const auto &         coarseOrigin = coarseProbability->GetOrigin();
  ImageType::PointType lower;
  ImageType::PointType upper;
  for (unsigned int d = 0; d < 3; ++d)
  {
    // Room for the band beyond the coarse voxels' centres, and for the features around it.
    const double margin = BandDepthOutside + coarseSpacing[d] + (FeatureReach + 1) * fineSpacing;
    lower[d] = coarseOrigin[d] + lowest[d] * coarseSpacing[d] - margin;
    upper[d] = coarseOrigin[d] + highest[d] * coarseSpacing[d] + margin;
  }

  // Origin on an input voxel's centre, so that an axis-aligned input at the
  // fine spacing is sampled at its own voxels.
  ContinuousIndex<double, 3> lowerIndex;
  image->TransformPhysicalPointToContinuousIndex(lower, lowerIndex);
  ImageType::IndexType nearest;
  for (unsigned int d = 0; d < 3; ++d)
  {
    nearest[d] = static_cast<IndexValueType>(std::llround(lowerIndex[d]));
  }
  ImageType::PointType anchor;
  image->TransformIndexToPhysicalPoint(nearest, anchor);
  ImageType::PointType   origin;
  ImageType::SizeType    size;
  ImageType::SpacingType spacing;
  for (unsigned int d = 0; d < 3; ++d)
  {
    spacing[d] = fineSpacing;
    origin[d] = anchor[d] - std::ceil((anchor[d] - lower[d]) / fineSpacing) * fineSpacing;
    size[d] = static_cast<SizeValueType>(std::ceil((upper[d] - origin[d]) / fineSpacing)) + 1;
  }
  auto grid = ImageType::New();
  grid->SetRegions(size);
  grid->SetOrigin(origin);
  grid->SetSpacing(spacing);
  ImageType::DirectionType identity;
  identity.SetIdentity();
  grid->SetDirection(identity);

  FineVolumes volumes;
  volumes.Intensity = KDBrainExtractionPreprocessing::ResampleToReferenceGrid(image, grid);
  KDBrainExtractionPreprocessing::NormalizeIntensities(volumes.Intensity, window);
  volumes.CoarseProbability = KDBrainExtractionPreprocessing::ResampleToReferenceGrid(coarseProbability, grid);

  using DistanceFilterType = SignedMaurerDistanceMapImageFilter<MaskImageType, ImageType>;
  auto threshold = BinaryThresholdImageFilter<ImageType, MaskImageType>::New();
  threshold->SetInput(coarseProbability);
  threshold->SetLowerThreshold(0.5f);
  threshold->SetInsideValue(1);
  threshold->SetOutsideValue(0);
  auto distance = DistanceFilterType::New();
  distance->SetInput(threshold->GetOutput());
  distance->SetUseImageSpacing(true);
  distance->SetSquaredDistance(false);
  distance->SetInsideIsPositive(false);
  distance->Update();
  // Outside the coarse grid (beyond the input's extent) is outside the brain.
  volumes.CoarseDistance = KDBrainExtractionPreprocessing::ResampleToReferenceGrid(
    distance->GetOutput(), grid, static_cast<float>(10.0 * BandDepthOutside));

  const float * signedDistance = volumes.CoarseDistance->GetBufferPointer();
  offset = 0;
  for (long z = 0; z < static_cast<long>(size[2]); ++z)
  {
    const bool zInside = z >= FeatureReach && z < static_cast<long>(size[2]) - FeatureReach;
    for (long y = 0; y < static_cast<long>(size[1]); ++y)
    {
      const bool yzInside = zInside && y >= FeatureReach && y < static_cast<long>(size[1]) - FeatureReach;
      for (long x = 0; x < static_cast<long>(size[0]); ++x, ++offset)
      {
        // The margin keeps the band away from the edges; the test makes sure.
        if (yzInside && x >= FeatureReach && x < static_cast<long>(size[0]) - FeatureReach &&
            signedDistance[offset] >= -BandDepthInside && signedDistance[offset] <= BandDepthOutside)
        {
          volumes.BandOffsets.push_back(offset);
        }
      }
    }
  }
  return volumes;
}

void
KDBrainExtractionBoundaryRefinement::GatherFeatures(const FineVolumes & volumes, const std::size_t * offsets,
                                                    std::size_t count, float * features)
{
  const auto                          size = volumes.Intensity->GetLargestPossibleRegion().GetSize();
  const std::array<std::ptrdiff_t, 3> strides{
    { 1, static_cast<std::ptrdiff_t>(size[0]), static_cast<std::ptrdiff_t>(size[0] * size[1]) }
  };
  const auto fine = CubeOffsets(FineIntensityRadius, 1, strides);
  const auto wide = CubeOffsets(1, WideIntensityStep, strides);
  const auto wider = CubeOffsets(1, WiderIntensityStep, strides);
  const auto around = CubeOffsets(1, CoarseProbabilityStep, strides);
  static_assert(NumberOfFeatures == 125 + 27 + 27 + 27 + 1, "the feature layout below");
  const float * intensity = volumes.Intensity->GetBufferPointer();
  const float * probability = volumes.CoarseProbability->GetBufferPointer();
  const float * distance = volumes.CoarseDistance->GetBufferPointer();
  const auto    gather = [&](SizeValueType point) {
    const auto centre = static_cast<std::ptrdiff_t>(offsets[point]);
    float *    out = features + point * NumberOfFeatures;
    for (const auto step : fine)
    {
      *out++ = intensity[centre + step];
    }
    for (const auto step : wide)
    {
      *out++ = intensity[centre + step];
    }
    for (const auto step : wider)
    {
      *out++ = intensity[centre + step];
    }
    for (const auto step : around)
    {
      *out++ = probability[centre + step];
    }
    *out = static_cast<float>(distance[centre] / BandDepthInside);
  };
  MultiThreaderBase::New()->ParallelizeArray(0, static_cast<SizeValueType>(count), gather, nullptr);
}

auto
KDBrainExtractionBoundaryRefinement::Refine(const ImageType * image, const IntensityWindow & window,
                                            ImageType * coarseProbability, const KDBrainExtractionTorchModel & student,
                                            const KDBrainExtractionTorchModel & refiner) -> ImageType::Pointer
{
  using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
  if (refiner.GetRole() != RoleEnum::Refiner || student.GetRole() != RoleEnum::Student)
  {
    ExceptionObject error(__FILE__, __LINE__);
    error.SetDescription("a fine stage needs a refiner model after a student, not a " +
                         KDBrainExtractionTorchModel::RoleToString(refiner.GetRole()) + " after a " +
                         KDBrainExtractionTorchModel::RoleToString(student.GetRole()));
    throw error;
  }
  const float *     coarseVoxels = coarseProbability->GetBufferPointer();
  const std::size_t numberOfCoarseVoxels = coarseProbability->GetBufferedRegion().GetNumberOfPixels();
  if (std::none_of(coarseVoxels, coarseVoxels + numberOfCoarseVoxels, [](float p) { return p >= 0.5f; }))
  {
    // No brain, no boundary: the result is the coarse one (an empty mask).
    return coarseProbability;
  }
  const FineVolumes volumes =
    PrepareFineVolumes(image, window, coarseProbability, refiner.GetContract().WorkingSpacing[0]);
  // The coarse probability on the fine grid is the result away from the band.
  ImageType::Pointer refined = volumes.CoarseProbability;
  float *            probability = refined->GetBufferPointer();
  // Chunks bound the features' memory (64 Ki points: 47 MB).
  constexpr std::size_t chunk = std::size_t{ 1 } << 16;
  std::vector<float>    features(chunk * NumberOfFeatures);
  std::vector<float>    result(chunk);
  const auto &          band = volumes.BandOffsets;
  for (std::size_t first = 0; first < band.size(); first += chunk)
  {
    const std::size_t count = std::min(chunk, band.size() - first);
    GatherFeatures(volumes, band.data() + first, count, features.data());
    refiner.PredictBoundary(features.data(), count, result.data());
    for (std::size_t point = 0; point < count; ++point)
    {
      probability[band[first + point]] = result[point];
    }
  }
  return refined;
}
} // end namespace itk
