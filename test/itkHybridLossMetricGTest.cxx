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

#include "itkGTest.h"
#include "itkHybridLossMetric.h"
#include "itkKDBrainExtractionTestUtilities.h"

#include <cmath>
#include <limits>

namespace
{
using namespace itk::KDBrainExtractionTesting;
using MaskImageType = itk::Image<unsigned char, 3>;

/** A box [low, high) of 1s in a 24^3 mask at 2 mm. */
MaskImageType::Pointer
MakeBox(int low, int high)
{
  auto mask = MaskImageType::New();
  mask->SetRegions(MaskImageType::SizeType{ { 24, 24, 24 } });
  mask->SetSpacing(MaskImageType::SpacingType(2.0));
  mask->Allocate();
  mask->FillBuffer(0);
  MaskImageType::IndexType index;
  for (index[2] = low; index[2] < high; ++index[2])
  {
    for (index[1] = low; index[1] < high; ++index[1])
    {
      for (index[0] = low; index[0] < high; ++index[0])
      {
        mask->SetPixel(index, 1);
      }
    }
  }
  return mask;
}

template <typename TPrediction, typename TTarget>
typename itk::HybridLossMetric<TPrediction, TTarget>::Pointer
Measure(const TPrediction * prediction, const TTarget * target)
{
  auto metric = itk::HybridLossMetric<TPrediction, TTarget>::New();
  metric->SetPredictionImage(prediction);
  metric->SetTargetImage(target);
  metric->Update();
  return metric;
}
} // namespace

TEST(HybridLossMetric, IdenticalImagesAreAPerfectMatch)
{
  const auto mask = MakeBox(6, 16);
  const auto metric = Measure(mask.GetPointer(), mask.GetPointer());
  EXPECT_NEAR(metric->GetLoss(), 0.0, 1e-9);
  EXPECT_NEAR(metric->GetMeanSquaredError(), 0.0, 1e-12);
  EXPECT_NEAR(metric->GetStructuralSimilarity(), 1.0, 1e-9);
  EXPECT_NEAR(metric->GetDice(), 1.0, 1e-12);
  EXPECT_NEAR(metric->GetSoftDice(), 1.0, 1e-9);
  EXPECT_NEAR(metric->GetSensitivity(), 1.0, 1e-12);
  EXPECT_NEAR(metric->GetSpecificity(), 1.0, 1e-12);
  EXPECT_NEAR(metric->GetHausdorffDistance95(), 0.0, 1e-9);
  EXPECT_TRUE(std::isinf(metric->GetPeakSignalToNoiseRatio()));
}

TEST(HybridLossMetric, ShiftedAndDisjointMasksByHand)
{
  // A 10^3 box against the same box shifted by 3 voxels (6 mm) on one axis.
  const auto reference = MakeBox(6, 16);
  auto       shifted = MakeBox(6, 16);
  shifted->FillBuffer(0);
  MaskImageType::IndexType index;
  for (index[2] = 6; index[2] < 16; ++index[2])
  {
    for (index[1] = 6; index[1] < 16; ++index[1])
    {
      for (index[0] = 9; index[0] < 19; ++index[0])
      {
        shifted->SetPixel(index, 1);
      }
    }
  }
  auto metric = Measure(shifted.GetPointer(), reference.GetPointer());
  // Overlap 7x10x10 of 1000 each: Dice 0.7, sensitivity 0.7.
  EXPECT_NEAR(metric->GetDice(), 0.7, 1e-12);
  EXPECT_NEAR(metric->GetSensitivity(), 0.7, 1e-12);
  // 300 false positives among 24^3 - 1000 negatives.
  EXPECT_NEAR(metric->GetSpecificity(), 1.0 - 300.0 / (24 * 24 * 24 - 1000), 1e-12);
  // Masks differ in 600 voxels of 24^3: MSE = MAE = 600 / 13824.
  EXPECT_NEAR(metric->GetMeanSquaredError(), 600.0 / 13824.0, 1e-12);
  EXPECT_NEAR(metric->GetMeanAbsoluteError(), 600.0 / 13824.0, 1e-12);
  EXPECT_NEAR(metric->GetPeakSignalToNoiseRatio(), 10.0 * std::log10(13824.0 / 600.0), 1e-9);
  // The shifted faces lie 3 voxels (6 mm) from the reference's surface.
  EXPECT_NEAR(metric->GetHausdorffDistance95(), 6.0, 1e-6);
  EXPECT_NEAR(metric->GetLoss(),
              metric->GetMeanSquaredError() + (1 - metric->GetStructuralSimilarity()) + (1 - metric->GetSoftDice()),
              1e-9);

  const auto disjoint = MakeBox(17, 24);
  metric = Measure(disjoint.GetPointer(), reference.GetPointer());
  EXPECT_NEAR(metric->GetDice(), 0.0, 1e-12);
  EXPECT_NEAR(metric->GetSensitivity(), 0.0, 1e-12);
  EXPECT_GT(metric->GetHausdorffDistance95(), 0.0);

  const auto empty = MakeBox(0, 0);
  metric = Measure(empty.GetPointer(), reference.GetPointer());
  EXPECT_TRUE(std::isinf(metric->GetHausdorffDistance95()));
}

TEST(HybridLossMetric, ConstantShiftOfAGrayscaleImage)
{
  ImageType::DirectionType identity;
  identity.SetIdentity();
  const auto target =
    MakeImage({ { 20, 20, 20 } },
              ImageType::SpacingType(1.0),
              ImageType::PointType(0.0),
              identity,
              [](const ImageType::PointType & p) { return float(2.0 + std::sin(p[0] / 3) * std::cos(p[1] / 4)); });
  auto shifted =
    MakeImage({ { 20, 20, 20 } },
              ImageType::SpacingType(1.0),
              ImageType::PointType(0.0),
              identity,
              [](const ImageType::PointType & p) { return float(2.1 + std::sin(p[0] / 3) * std::cos(p[1] / 4)); });
  const auto metric = Measure(shifted.GetPointer(), target.GetPointer());
  EXPECT_NEAR(metric->GetMeanSquaredError(), 0.01, 1e-6);
  EXPECT_NEAR(metric->GetMeanAbsoluteError(), 0.1, 1e-6);
  // A shift leaves SSIM's contrast and structure terms at 1; with local means
  // near 2 the luminance term is (2 m (m + 0.1) + C1) / (m^2 + (m + 0.1)^2 + C1) > 0.99.
  EXPECT_LT(metric->GetStructuralSimilarity(), 1.0);
  EXPECT_GT(metric->GetStructuralSimilarity(), 0.99);

  auto weighted = itk::HybridLossMetric<ImageType>::New();
  weighted->SetPredictionImage(shifted);
  weighted->SetTargetImage(target);
  weighted->SetStructuralDissimilarityWeight(0.0);
  weighted->SetDiceLossWeight(0.0);
  weighted->SetMeanSquaredErrorWeight(2.0);
  weighted->Update();
  EXPECT_NEAR(weighted->GetLoss(), 0.02, 1e-6);
}

TEST(HybridLossMetric, DifferentGridsAreRefused)
{
  const auto a = MakeBox(6, 16);
  auto       b = MakeBox(6, 16);
  b->SetSpacing(MaskImageType::SpacingType(1.0));
  auto metric = itk::HybridLossMetric<MaskImageType>::New();
  metric->SetPredictionImage(a);
  metric->SetTargetImage(b);
  EXPECT_THROW(metric->Update(), itk::ExceptionObject);
}

TEST(HybridLossMetric, RegionsThatDoNotStartAtIndexZeroGiveTheSameValues)
{
  // A region is an index and a size; images cut out of larger ones (an
  // ExtractImageFilter's output) start elsewhere than 0.
  const auto shift = [](const MaskImageType * mask) {
    auto shifted = MaskImageType::New();
    shifted->Graft(mask);
    MaskImageType::RegionType region = mask->GetLargestPossibleRegion();
    region.SetIndex(MaskImageType::IndexType{ { 10, -5, 7 } });
    shifted->SetRegions(region);
    return shifted;
  };
  const auto a = MakeBox(6, 16);
  const auto b = MakeBox(8, 18);
  const auto atZero = Measure(a.GetPointer(), b.GetPointer());
  const auto shiftedA = shift(a);
  const auto shiftedB = shift(b);
  const auto shifted = Measure(shiftedA.GetPointer(), shiftedB.GetPointer());
  EXPECT_DOUBLE_EQ(shifted->GetDice(), atZero->GetDice());
  EXPECT_DOUBLE_EQ(shifted->GetHausdorffDistance95(), atZero->GetHausdorffDistance95());
  EXPECT_DOUBLE_EQ(shifted->GetLoss(), atZero->GetLoss());
  EXPECT_GT(atZero->GetHausdorffDistance95(), 0.0);

  // The same voxels at other indices are another place in space.
  auto metric = itk::HybridLossMetric<MaskImageType>::New();
  metric->SetPredictionImage(shiftedA);
  metric->SetTargetImage(b);
  EXPECT_THROW(metric->Update(), itk::ExceptionObject);
}

TEST(HybridLossMetric, DifferentDirectionsAreRefused)
{
  // The same buffer, x flipped: voxel i of one is not voxel i of the other.
  const auto a = MakeBox(6, 16);
  auto       b = MaskImageType::New();
  b->Graft(a);
  MaskImageType::DirectionType flipped;
  flipped.SetIdentity();
  flipped(0, 0) = -1.0;
  b->SetDirection(flipped);
  auto metric = itk::HybridLossMetric<MaskImageType>::New();
  metric->SetPredictionImage(a);
  metric->SetTargetImage(b);
  try
  {
    metric->Update();
    ADD_FAILURE() << "Dice " << metric->GetDice() << " for images in different orientations";
  }
  catch (const itk::ExceptionObject & error)
  {
    EXPECT_NE(std::string(error.GetDescription()).find("direction"), std::string::npos) << error.GetDescription();
  }
}
