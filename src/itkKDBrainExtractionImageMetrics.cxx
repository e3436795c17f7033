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
#include "itkKDBrainExtractionImageMetrics.h"

#include "itkKDBrainExtractionHybridLoss.h"
#include "itkKDBrainExtractionTensorBridge.h"
#include "itkSignedMaurerDistanceMapImageFilter.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace itk
{
namespace
{
using MaskImageType = Image<unsigned char, 3>;

MaskImageType::Pointer
Threshold(const KDBrainExtractionImageMetrics::ImageType * image, double threshold)
{
  auto mask = MaskImageType::New();
  mask->CopyInformation(image);
  mask->SetRegions(image->GetLargestPossibleRegion());
  mask->Allocate();
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i)
  {
    mask->GetBufferPointer()[i] = image->GetBufferPointer()[i] >= threshold ? 1 : 0;
  }
  return mask;
}

/** Distances (mm) from the surface voxels of \a from to the surface of \a to. */
std::vector<double>
SurfaceDistances(const MaskImageType * from, const MaskImageType * to)
{
  auto distance = SignedMaurerDistanceMapImageFilter<MaskImageType, Image<float, 3>>::New();
  distance->SetInput(to);
  distance->SetBackgroundValue(0);
  distance->SquaredDistanceOff();
  distance->UseImageSpacingOn();
  distance->Update();
  const auto *             map = distance->GetOutput();
  const auto               region = from->GetLargestPossibleRegion();
  const auto               start = region.GetIndex();
  const auto               size = region.GetSize();
  std::vector<double>      distances;
  MaskImageType::IndexType index;
  // Indices run over the region, which need not start at 0.
  for (index[2] = start[2]; index[2] < start[2] + static_cast<IndexValueType>(size[2]); ++index[2])
  {
    for (index[1] = start[1]; index[1] < start[1] + static_cast<IndexValueType>(size[1]); ++index[1])
    {
      for (index[0] = start[0]; index[0] < start[0] + static_cast<IndexValueType>(size[0]); ++index[0])
      {
        if (!from->GetPixel(index))
        {
          continue;
        }
        // A surface voxel has a face neighbour outside the mask (or the grid).
        bool surface = false;
        for (unsigned int d = 0; d < 3 && !surface; ++d)
        {
          for (const int step : { -1, 1 })
          {
            auto neighbour = index;
            neighbour[d] += step;
            if (!region.IsInside(neighbour) || !from->GetPixel(neighbour))
            {
              surface = true;
              break;
            }
          }
        }
        if (surface)
        {
          // Maurer's map is zero-crossing based: |d| is the distance to the
          // other mask's boundary, the value ITK and MONAI use for HD.
          distances.push_back(std::abs(map->GetPixel(index)));
        }
      }
    }
  }
  return distances;
}

double
Percentile95(std::vector<double> values)
{
  const auto rank = static_cast<std::size_t>(std::ceil(0.95 * values.size())) - 1;
  std::nth_element(values.begin(), values.begin() + rank, values.end());
  return values[rank];
}
} // namespace

KDBrainExtractionImageMetrics::Values
KDBrainExtractionImageMetrics::Compute(const ImageType * prediction, const ImageType * target, const Options & options)
{
  if (prediction == nullptr || target == nullptr)
  {
    itkGenericExceptionMacro(<< "the prediction and the target image are both needed");
  }
  if (prediction->GetLargestPossibleRegion() != target->GetLargestPossibleRegion())
  {
    itkGenericExceptionMacro(<< "the prediction (size " << prediction->GetLargestPossibleRegion().GetSize()
                             << ", index " << prediction->GetLargestPossibleRegion().GetIndex()
                             << ") and the target (size " << target->GetLargestPossibleRegion().GetSize() << ", index "
                             << target->GetLargestPossibleRegion().GetIndex() << ") have different regions");
  }
  for (const ImageType * image : { prediction, target })
  {
    // The voxels are read straight from the buffers.
    if (image->GetBufferedRegion() != image->GetLargestPossibleRegion())
    {
      itkGenericExceptionMacro(<< "the whole image must be in memory (buffered region " << image->GetBufferedRegion()
                               << ", largest possible " << image->GetLargestPossibleRegion() << ")");
    }
  }
  const auto & predictionDirection = prediction->GetDirection();
  const auto & targetDirection = target->GetDirection();
  for (unsigned int row = 0; row < 3; ++row)
  {
    for (unsigned int column = 0; column < 3; ++column)
    {
      if (std::abs(predictionDirection(row, column) - targetDirection(row, column)) > 1e-4)
      {
        itkGenericExceptionMacro(<< "the prediction and the target have different directions (" << predictionDirection
                                 << " vs " << targetDirection << "): voxel by voxel they are not the same places");
      }
    }
  }
  for (unsigned int d = 0; d < 3; ++d)
  {
    if (std::abs(prediction->GetSpacing()[d] - target->GetSpacing()[d]) > 1e-4 * target->GetSpacing()[d] ||
        std::abs(prediction->GetOrigin()[d] - target->GetOrigin()[d]) > 1e-3 * target->GetSpacing()[d])
    {
      itkGenericExceptionMacro(<< "the prediction and the target lie on different grids (spacing "
                               << prediction->GetSpacing() << " vs " << target->GetSpacing() << ", origin "
                               << prediction->GetOrigin() << " vs " << target->GetOrigin() << ")");
    }
  }
  const auto                       size = target->GetLargestPossibleRegion().GetSize();
  const std::array<std::size_t, 3> extent{ { size[0], size[1], size[2] } };
  // Double precision: these are reported numbers, not training arithmetic.
  const torch::Tensor p = KDBrainExtractionBufferToTensor(prediction->GetBufferPointer(), extent).to(torch::kFloat64);
  const torch::Tensor t = KDBrainExtractionBufferToTensor(target->GetBufferPointer(), extent).to(torch::kFloat64);
  double              dataRange = options.DataRange;
  if (!(dataRange > 0.0))
  {
    dataRange = (t.max() - t.min()).item<double>();
    dataRange = dataRange > 0.0 ? dataRange : 1.0;
  }

  HybridLossWeights weights;
  weights.MeanSquaredError = options.MeanSquaredErrorWeight;
  weights.StructuralDissimilarity = options.StructuralDissimilarityWeight;
  weights.DiceLoss = options.DiceLossWeight;
  const HybridLossTerms terms =
    KDBrainExtractionHybridLoss(p, t, weights, dataRange, options.StructuralSimilaritySigma);

  Values values;
  values.MeanSquaredError = terms.MeanSquaredError.item<double>();
  values.StructuralSimilarity = terms.StructuralSimilarity.item<double>();
  values.SoftDice = terms.Dice.item<double>();
  values.Loss = terms.Loss.item<double>();
  values.MeanAbsoluteError = (p - t).abs().mean().item<double>();
  values.PeakSignalToNoiseRatio = values.MeanSquaredError > 0.0
                                    ? 10.0 * std::log10(dataRange * dataRange / values.MeanSquaredError)
                                    : std::numeric_limits<double>::infinity();

  const auto        predictedMask = Threshold(prediction, options.BinaryThreshold);
  const auto        targetMask = Threshold(target, options.BinaryThreshold);
  double            truePositives = 0, falsePositives = 0, falseNegatives = 0, trueNegatives = 0;
  const std::size_t n = target->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i)
  {
    const bool predicted = predictedMask->GetBufferPointer()[i] != 0;
    const bool expected = targetMask->GetBufferPointer()[i] != 0;
    truePositives += predicted && expected;
    falsePositives += predicted && !expected;
    falseNegatives += !predicted && expected;
    trueNegatives += !predicted && !expected;
  }
  // Conventions for empty sets: two empty masks agree perfectly.
  values.Dice = truePositives + falsePositives + falseNegatives > 0
                  ? 2.0 * truePositives / (2.0 * truePositives + falsePositives + falseNegatives)
                  : 1.0;
  values.Sensitivity = truePositives + falseNegatives > 0 ? truePositives / (truePositives + falseNegatives) : 1.0;
  values.Specificity = trueNegatives + falsePositives > 0 ? trueNegatives / (trueNegatives + falsePositives) : 1.0;
  const bool predictedEmpty = truePositives + falsePositives == 0;
  const bool expectedEmpty = truePositives + falseNegatives == 0;
  if (predictedEmpty || expectedEmpty)
  {
    values.HausdorffDistance95 = predictedEmpty && expectedEmpty ? 0.0 : std::numeric_limits<double>::infinity();
  }
  else
  {
    values.HausdorffDistance95 = std::max(Percentile95(SurfaceDistances(predictedMask, targetMask)),
                                          Percentile95(SurfaceDistances(targetMask, predictedMask)));
  }
  return values;
}
} // end namespace itk
