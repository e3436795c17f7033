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

#include "itkBinaryFillholeImageFilter.h"
#include "itkBinaryThresholdImageFilter.h"
#include "itkConnectedComponentImageFilter.h"
#include "itkGTest.h"
#include "itkImageRegionConstIteratorWithIndex.h"
#include "itkKDBrainExtractionPreprocessing.h"
#include "itkKDBrainExtractionTestUtilities.h"
#include "itkRelabelComponentImageFilter.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>

namespace
{
using itk::KDBrainExtractionPreprocessing;
using ImageType = KDBrainExtractionPreprocessing::ImageType;
using namespace itk::KDBrainExtractionTesting;

ImageType::Pointer
MakeObliqueAnisotropicImage(const std::function<float(const ImageType::PointType &)> & value)
{
  ImageType::SpacingType spacing;
  spacing[0] = 1.0;
  spacing[1] = 1.5;
  spacing[2] = 3.0;
  ImageType::PointType origin;
  origin[0] = -40.0;
  origin[1] = -50.0;
  origin[2] = -30.0;
  return MakeImage(ImageType::SizeType{ { 80, 60, 24 } }, spacing, origin, MakeObliqueDirection(20.0, -15.0), value);
}
} // namespace

TEST(KDBrainExtractionPreprocessing, WorkingGridIsAxisAlignedAndCoversTheInput)
{
  const auto image = MakeObliqueAnisotropicImage([](const ImageType::PointType &) { return 1.0f; });
  KDBrainExtractionPreprocessing::Contract contract;
  const auto                               grid = KDBrainExtractionPreprocessing::MakeWorkingGrid(image, contract);
  ImageType::DirectionType                 identity;
  identity.SetIdentity();
  EXPECT_EQ(grid->GetDirection(), identity);
  for (unsigned int d = 0; d < 3; ++d)
  {
    EXPECT_DOUBLE_EQ(grid->GetSpacing()[d], 2.0);
    EXPECT_EQ(grid->GetLargestPossibleRegion().GetSize()[d] % contract.SizeMultiple, 0u);
  }
  // Every corner of the input lies inside the working grid.
  const auto size = image->GetLargestPossibleRegion().GetSize();
  for (unsigned int corner = 0; corner < 8; ++corner)
  {
    ImageType::IndexType index;
    for (unsigned int d = 0; d < 3; ++d)
    {
      index[d] = (corner >> d) & 1u ? static_cast<itk::IndexValueType>(size[d] - 1) : 0;
    }
    ImageType::PointType point;
    image->TransformIndexToPhysicalPoint(index, point);
    itk::ContinuousIndex<double, 3> inGrid;
    grid->TransformPhysicalPointToContinuousIndex(point, inGrid);
    for (unsigned int d = 0; d < 3; ++d)
    {
      EXPECT_GE(inGrid[d], -0.5);
      EXPECT_LE(inGrid[d], grid->GetLargestPossibleRegion().GetSize()[d] - 0.5);
    }
  }
}

TEST(KDBrainExtractionPreprocessing, ResamplingKeepsPhysicalPositionsOfObliqueAnisotropicInput)
{
  // A linear function of the physical position survives linear resampling
  // exactly, away from the borders.
  auto linear = [](const ImageType::PointType & p) {
    return static_cast<float>(3.0 + 0.5 * p[0] - 0.25 * p[1] + 0.1 * p[2]);
  };
  const auto                               image = MakeObliqueAnisotropicImage(linear);
  KDBrainExtractionPreprocessing::Contract contract;
  const auto working = KDBrainExtractionPreprocessing::ResampleToWorkingGrid(image, contract);

  unsigned int                                      checked = 0;
  itk::ImageRegionConstIteratorWithIndex<ImageType> it(working, working->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it)
  {
    ImageType::PointType point;
    working->TransformIndexToPhysicalPoint(it.GetIndex(), point);
    itk::ContinuousIndex<double, 3> inInput;
    image->TransformPhysicalPointToContinuousIndex(point, inInput);
    const auto size = image->GetLargestPossibleRegion().GetSize();
    // Inside the input, away from its borders.
    if (inInput[0] > 6 && inInput[0] < size[0] - 7 && inInput[1] > 4 && inInput[1] < size[1] - 5 && inInput[2] > 2 &&
        inInput[2] < size[2] - 3)
    {
      EXPECT_NEAR(it.Get(), linear(point), 2e-3) << "at working index " << it.GetIndex();
      ++checked;
    }
  }
  EXPECT_GT(checked, 200u);

  // Back onto the input grid: the same function again.
  const auto back = KDBrainExtractionPreprocessing::ResampleToReferenceGrid(working, image);
  EXPECT_EQ(back->GetLargestPossibleRegion(), image->GetLargestPossibleRegion());
  EXPECT_EQ(back->GetDirection(), image->GetDirection());
  EXPECT_EQ(back->GetOrigin(), image->GetOrigin());
  ImageType::IndexType centre{ { 40, 30, 12 } };
  ImageType::PointType point;
  image->TransformIndexToPhysicalPoint(centre, point);
  EXPECT_NEAR(back->GetPixel(centre), linear(point), 2e-3);
}

TEST(KDBrainExtractionPreprocessing, ReorientedInputsShareOneWorkingGrid)
{
  const auto image = MakeObliqueAnisotropicImage([](const ImageType::PointType & p) { return float(p[0]); });
  std::function<ImageType::IndexType(const ImageType::IndexType &)> sourceIndex;
  const auto reoriented = MakeReorientedCopy(image, { { 2, 0, 1 } }, { { true, false, true } }, sourceIndex);
  KDBrainExtractionPreprocessing::Contract contract;
  const auto                               a = KDBrainExtractionPreprocessing::MakeWorkingGrid(image, contract);
  const auto                               b = KDBrainExtractionPreprocessing::MakeWorkingGrid(reoriented, contract);
  EXPECT_EQ(a->GetLargestPossibleRegion(), b->GetLargestPossibleRegion());
  for (unsigned int d = 0; d < 3; ++d)
  {
    EXPECT_NEAR(a->GetOrigin()[d], b->GetOrigin()[d], 1e-9);
  }
}

TEST(KDBrainExtractionPreprocessing, IntensityWindowUsesPercentiles)
{
  // Values 0..999 once each: the 0.5th and 99.5th percentiles are ~5 and ~994.
  auto image = ImageType::New();
  image->SetRegions(ImageType::SizeType{ { 10, 10, 10 } });
  image->Allocate();
  for (unsigned int i = 0; i < 1000; ++i)
  {
    image->GetBufferPointer()[i] = static_cast<float>((i * 7919) % 1000);
  }
  KDBrainExtractionPreprocessing::Contract contract;
  const auto window = KDBrainExtractionPreprocessing::ComputeIntensityWindow(image, contract);
  EXPECT_NEAR(window.Lower, 5.0, 1.0);
  EXPECT_NEAR(window.Upper, 994.0, 1.0);
  KDBrainExtractionPreprocessing::NormalizeIntensities(image, window);
  float minimum = 1e9f, maximum = -1e9f;
  for (unsigned int i = 0; i < 1000; ++i)
  {
    minimum = std::min(minimum, image->GetBufferPointer()[i]);
    maximum = std::max(maximum, image->GetBufferPointer()[i]);
  }
  EXPECT_FLOAT_EQ(minimum, 0.0f);
  EXPECT_FLOAT_EQ(maximum, 1.0f);
}

TEST(KDBrainExtractionPreprocessing, VerifyImageNamesTheProblem)
{
  auto expectError = [](const ImageType * image, const std::string & expected) {
    try
    {
      KDBrainExtractionPreprocessing::VerifyImage(image, "head.nii.gz");
      ADD_FAILURE() << "no exception, expected '" << expected << "'";
    }
    catch (const itk::ExceptionObject & error)
    {
      const std::string message = error.GetDescription();
      EXPECT_NE(message.find("head.nii.gz"), std::string::npos) << message;
      EXPECT_NE(message.find(expected), std::string::npos) << message;
    }
  };
  const ImageType::SpacingType spacing(1.0);
  ImageType::DirectionType     identity;
  identity.SetIdentity();
  const ImageType::PointType origin(0.0);
  auto                       constant =
    MakeImage({ { 16, 16, 16 } }, spacing, origin, identity, [](const ImageType::PointType &) { return 3.0f; });
  expectError(constant, "constant");
  auto withNaN = MakeImage(
    { { 16, 16, 16 } }, spacing, origin, identity, [](const ImageType::PointType & p) { return float(p[0]); });
  withNaN->GetBufferPointer()[100] = std::numeric_limits<float>::quiet_NaN();
  withNaN->GetBufferPointer()[200] = std::numeric_limits<float>::infinity();
  expectError(withNaN, "2 voxels are NaN or infinite");
  auto flat =
    MakeImage({ { 64, 64, 1 } }, spacing, origin, identity, [](const ImageType::PointType & p) { return float(p[0]); });
  expectError(flat, "not a 3D head volume");
  auto good = MakeImage(
    { { 16, 16, 16 } }, spacing, origin, identity, [](const ImageType::PointType & p) { return float(p[0]); });
  EXPECT_NO_THROW(KDBrainExtractionPreprocessing::VerifyImage(good, "head.nii.gz"));
}

TEST(KDBrainExtractionPreprocessing, BrainMaskKeepsLargestComponentAndFillsHoles)
{
  const ImageType::SpacingType spacing(1.0);
  ImageType::DirectionType     identity;
  identity.SetIdentity();
  const ImageType::PointType origin(0.0);
  // A hollow ball (radius 10, hole of radius 3) and a small separate ball.
  const auto probability = MakeImage({ { 40, 32, 32 } }, spacing, origin, identity, [](const ImageType::PointType & p) {
    const double big = std::hypot(p[0] - 14, p[1] - 16, p[2] - 16);
    const double small = std::hypot(p[0] - 34, p[1] - 16, p[2] - 16);
    return (big < 10 && big > 3) || small < 3 ? 0.9f : 0.1f;
  });
  const auto mask = KDBrainExtractionPreprocessing::MakeBrainMask(probability, 0.5, true, true);
  EXPECT_EQ(mask->GetPixel({ { 14, 16, 16 } }), 1) << "the hole is filled";
  EXPECT_EQ(mask->GetPixel({ { 34, 16, 16 } }), 0) << "the small component is removed";
  EXPECT_EQ(mask->GetPixel({ { 20, 16, 16 } }), 1);
  const auto raw = KDBrainExtractionPreprocessing::MakeBrainMask(probability, 0.5, false, false);
  EXPECT_EQ(raw->GetPixel({ { 14, 16, 16 } }), 0);
  EXPECT_EQ(raw->GetPixel({ { 34, 16, 16 } }), 1);
}

// The post-processing works on the brain's bounding box with its own flood
// fills; it must give what ITK's filters give on the whole grid: components
// of many sizes, holes, and foreground touching the image's
// border (where the box has no padding).
TEST(KDBrainExtractionPreprocessing, BrainMaskMatchesITKComponentAndFillholeFilters)
{
  using MaskImageType = KDBrainExtractionPreprocessing::MaskImageType;
  const auto reference = [](const ImageType * probability, bool keepLargest, bool fill) {
    auto binary = itk::BinaryThresholdImageFilter<ImageType, MaskImageType>::New();
    binary->SetInput(probability);
    binary->SetLowerThreshold(0.5f);
    binary->SetInsideValue(1);
    binary->SetOutsideValue(0);
    binary->Update();
    MaskImageType::Pointer mask = binary->GetOutput();
    if (keepLargest)
    {
      using LabelImageType = itk::Image<unsigned int, 3>;
      auto components = itk::ConnectedComponentImageFilter<MaskImageType, LabelImageType>::New();
      components->SetInput(mask);
      components->FullyConnectedOff();
      auto relabel = itk::RelabelComponentImageFilter<LabelImageType, LabelImageType>::New();
      relabel->SetInput(components->GetOutput());
      auto largest = itk::BinaryThresholdImageFilter<LabelImageType, MaskImageType>::New();
      largest->SetInput(relabel->GetOutput());
      largest->SetLowerThreshold(1);
      largest->SetUpperThreshold(1);
      largest->SetInsideValue(1);
      largest->SetOutsideValue(0);
      largest->Update();
      mask = largest->GetOutput();
    }
    if (fill)
    {
      auto filler = itk::BinaryFillholeImageFilter<MaskImageType>::New();
      filler->SetInput(mask);
      filler->SetForegroundValue(1);
      filler->FullyConnectedOff();
      filler->Update();
      mask = filler->GetOutput();
    }
    return mask;
  };

  const ImageType::SpacingType spacing(1.0);
  ImageType::DirectionType     identity;
  identity.SetIdentity();
  for (unsigned int seed = 0; seed < 6; ++seed)
  {
    // Random balls and shells, some cut by the image's border, plus speckle.
    std::mt19937                           generator(seed);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::vector<std::array<double, 5>>     balls(8);
    for (auto & ball : balls)
    {
      ball = { uniform(generator) * 30,
               uniform(generator) * 26,
               uniform(generator) * 22,
               1 + 7 * uniform(generator),
               uniform(generator) * 3 };
    }
    const double speckle = seed < 3 ? 0.0 : 0.08;
    auto         probability =
      MakeImage({ { 30, 26, 22 } }, spacing, ImageType::PointType(0.0), identity, [&](const ImageType::PointType & p) {
        for (const auto & ball : balls)
        {
          const double r = std::hypot(p[0] - ball[0], p[1] - ball[1], p[2] - ball[2]);
          if (r < ball[3] && r >= ball[4])
          {
            return 0.9f;
          }
        }
        return 0.1f;
      });
    for (std::size_t i = 0; i < probability->GetBufferedRegion().GetNumberOfPixels(); ++i)
    {
      if (uniform(generator) < speckle)
      {
        probability->GetBufferPointer()[i] = 1.0f - probability->GetBufferPointer()[i];
      }
    }
    for (const bool keepLargest : { false, true })
    {
      for (const bool fill : { false, true })
      {
        const auto  expected = reference(probability, keepLargest, fill);
        const auto  mask = KDBrainExtractionPreprocessing::MakeBrainMask(probability, 0.5, keepLargest, fill);
        std::size_t differences = 0;
        std::size_t foreground = 0;
        for (std::size_t i = 0; i < mask->GetBufferedRegion().GetNumberOfPixels(); ++i)
        {
          differences += mask->GetBufferPointer()[i] != expected->GetBufferPointer()[i];
          foreground += expected->GetBufferPointer()[i];
        }
        EXPECT_EQ(differences, 0u) << "seed " << seed << " largest " << keepLargest << " fill " << fill;
        EXPECT_GT(foreground, 0u);
      }
    }
  }
}

// Moving the border is a dilation or erosion by a ball in millimetres: checked
// voxel by voxel against a brute-force search, on an anisotropic grid with
// foreground touching the image's border. The radii fall between attainable
// distances, so no voxel is a tie.
TEST(KDBrainExtractionPreprocessing, MaskBorderMovesByABallInMillimetres)
{
  using MaskImageType = KDBrainExtractionPreprocessing::MaskImageType;
  ImageType::SpacingType spacing;
  spacing[0] = 1.0;
  spacing[1] = 1.5;
  spacing[2] = 2.0;
  ImageType::DirectionType identity;
  identity.SetIdentity();
  const ImageType::SizeType size{ { 30, 26, 22 } };
  // Balls in index units, so that they are round in voxels and elongated in mm.
  const auto probability =
    MakeImage(size, spacing, ImageType::PointType(0.0), identity, [&spacing](const ImageType::PointType & p) {
      const double x = p[0] / spacing[0];
      const double y = p[1] / spacing[1];
      const double z = p[2] / spacing[2];
      const bool   inside = std::hypot(x - 12, y - 12, z - 10) < 8 || std::hypot(x - 27, y - 5, z - 19) < 5;
      return inside ? 0.9f : 0.1f;
    });
  const auto original = KDBrainExtractionPreprocessing::MakeBrainMask(probability, 0.5, false, false);

  // The distance from voxel (x, y, z) to the nearest voxel whose mask value is
  // \a value, searched up to \a reach mm; infinity if there is none that near.
  const auto nearest =
    [&](const MaskImageType * mask, const MaskImageType::IndexType & index, unsigned char value, double reach) {
      double              best = std::numeric_limits<double>::infinity();
      std::array<long, 3> radius;
      for (unsigned int axis = 0; axis < 3; ++axis)
      {
        radius[axis] = static_cast<long>(std::ceil(reach / spacing[axis]));
      }
      for (long dz = -radius[2]; dz <= radius[2]; ++dz)
        for (long dy = -radius[1]; dy <= radius[1]; ++dy)
          for (long dx = -radius[0]; dx <= radius[0]; ++dx)
          {
            const MaskImageType::IndexType other{ { index[0] + dx, index[1] + dy, index[2] + dz } };
            if (!mask->GetBufferedRegion().IsInside(other) || mask->GetPixel(other) != value)
            {
              continue;
            }
            best = std::min(best, std::hypot(dx * spacing[0], dy * spacing[1], dz * spacing[2]));
          }
      return best;
    };

  std::size_t originalVoxels = 0;
  for (std::size_t i = 0; i < original->GetBufferedRegion().GetNumberOfPixels(); ++i)
  {
    originalVoxels += original->GetBufferPointer()[i];
  }
  for (const double border : { 2.6, 1.2, -1.2, -2.6 })
  {
    const auto  moved = KDBrainExtractionPreprocessing::MakeBrainMask(probability, 0.5, false, false, border);
    std::size_t changed = 0;
    std::size_t wrong = 0;
    std::size_t movedVoxels = 0;
    for (itk::ImageRegionConstIteratorWithIndex<MaskImageType> it(original, original->GetBufferedRegion());
         !it.IsAtEnd();
         ++it)
    {
      const bool inside = it.Get() != 0;
      const bool expected = border > 0 ? inside || nearest(original, it.GetIndex(), 1, border) <= border
                                       : inside && nearest(original, it.GetIndex(), 0, -border) > -border;
      const bool actual = moved->GetPixel(it.GetIndex()) != 0;
      wrong += actual != expected;
      changed += actual != inside;
      movedVoxels += actual;
    }
    EXPECT_EQ(wrong, 0u) << "border " << border;
    EXPECT_GT(changed, 100u) << "border " << border;
    EXPECT_EQ(movedVoxels > originalVoxels, border > 0) << "border " << border;
  }

  // No move, an empty mask, and a distance that is not a number.
  const auto unmoved = KDBrainExtractionPreprocessing::MakeBrainMask(probability, 0.5, false, false, 0.0);
  EXPECT_TRUE(std::equal(unmoved->GetBufferPointer(),
                         unmoved->GetBufferPointer() + unmoved->GetBufferedRegion().GetNumberOfPixels(),
                         original->GetBufferPointer()));
  const auto empty = KDBrainExtractionPreprocessing::MakeBrainMask(probability, 0.95, true, true, 3.0);
  EXPECT_TRUE(std::all_of(empty->GetBufferPointer(),
                          empty->GetBufferPointer() + empty->GetBufferedRegion().GetNumberOfPixels(),
                          [](unsigned char voxel) { return voxel == 0; }));
  // A mask that fills the image has no voxel outside it to shrink from.
  const auto full = KDBrainExtractionPreprocessing::MakeBrainMask(probability, 0.05, false, false, -2.6);
  EXPECT_TRUE(std::all_of(full->GetBufferPointer(),
                          full->GetBufferPointer() + full->GetBufferedRegion().GetNumberOfPixels(),
                          [](unsigned char voxel) { return voxel == 1; }));
  EXPECT_THROW(KDBrainExtractionPreprocessing::MoveMaskBorder(original, std::numeric_limits<double>::quiet_NaN()),
               itk::ExceptionObject);
}
