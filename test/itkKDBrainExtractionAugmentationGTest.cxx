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
#include "itkHeadTissueEnums.h"
#include "itkKDBrainExtractionAugmentation.h"

#include <cmath>
#include <map>

namespace
{
using TissueClass = itk::HeadTissueEnums::TissueClass;
using ClassImageType = itk::Image<unsigned char, 3>;

unsigned char
Code(TissueClass value)
{
  return static_cast<unsigned char>(value);
}

/** 24^3 classes: white matter (r < 5) in grey matter (r < 9) around a
 * ventricle (r < 2), a sulcus of brain CSF along the top, CSF around the
 * brain (r < 11), bone beyond; and the brain mask (r < 9). */
ClassImageType::Pointer
MakeClasses(torch::Tensor & mask)
{
  auto classes = ClassImageType::New();
  classes->SetRegions(ClassImageType::SizeType{ { 24, 24, 24 } });
  classes->Allocate();
  mask = torch::zeros({ 1, 24, 24, 24 });
  unsigned char * code = classes->GetBufferPointer();
  float *         inside = mask.data_ptr<float>();
  for (int z = 0; z < 24; ++z)
  {
    for (int y = 0; y < 24; ++y)
    {
      for (int x = 0; x < 24; ++x)
      {
        const double r = std::sqrt((x - 12.0) * (x - 12.0) + (y - 12.0) * (y - 12.0) + (z - 12.0) * (z - 12.0));
        const int    i = (z * 24 + y) * 24 + x;
        TissueClass  value = TissueClass::BoneAndAir;
        if (r < 2)
        {
          value = TissueClass::BrainCSF;
        }
        else if (r < 5)
        {
          value = TissueClass::WhiteMatter;
        }
        else if (r < 9)
        {
          value = (x == 12 && z > 16) ? TissueClass::BrainCSF : TissueClass::GreyMatter;
        }
        else if (r < 11)
        {
          value = TissueClass::ExtraCerebralCSF;
        }
        code[i] = Code(value);
        inside[i] = r < 9 ? 1.0f : 0.0f;
      }
    }
  }
  return classes;
}

std::map<unsigned char, int>
CountClasses(const ClassImageType * classes)
{
  std::map<unsigned char, int> counts;
  for (std::size_t i = 0; i < classes->GetBufferedRegion().GetNumberOfPixels(); ++i)
  {
    ++counts[classes->GetBufferPointer()[i]];
  }
  return counts;
}
} // namespace

TEST(KDBrainExtractionAugmentation, AtrophyTurnsTissueBesideCSFIntoCSFAndShrinksTheMaskOnlyThere)
{
  torch::Tensor mask;
  const auto    classes = MakeClasses(mask);
  const auto    original = mask.clone();
  const auto    before = CountClasses(classes);
  for (uint64_t seed = 1; seed <= 4; ++seed)
  {
    std::mt19937_64 generator(seed);
    torch::Tensor   aged = original.clone();
    const auto      result = itk::KDBrainExtractionSimulateAtrophy(classes, aged, generator);
    const auto      after = CountClasses(result);
    EXPECT_LT(after.at(Code(TissueClass::GreyMatter)), before.at(Code(TissueClass::GreyMatter))) << seed;
    EXPECT_LT(after.at(Code(TissueClass::WhiteMatter)), before.at(Code(TissueClass::WhiteMatter))) << seed;
    EXPECT_GT(after.at(Code(TissueClass::BrainCSF)), before.at(Code(TissueClass::BrainCSF))) << seed;
    EXPECT_EQ(after.at(Code(TissueClass::BoneAndAir)), before.at(Code(TissueClass::BoneAndAir))) << seed;
    EXPECT_EQ(CountClasses(classes), before) << "the input classes changed";
    // The mask loses exactly the voxels turned into CSF around the brain.
    const auto removed = (original - aged).sum().item<float>();
    EXPECT_GT(removed, 0.0f) << seed;
    EXPECT_EQ(removed, after.at(Code(TissueClass::ExtraCerebralCSF)) - before.at(Code(TissueClass::ExtraCerebralCSF)))
      << seed;
    EXPECT_TRUE((aged <= original).all().item<bool>()) << "the mask grew";
  }
}

TEST(KDBrainExtractionAugmentation, FieldOfViewCutsZeroEverythingBeyondAPlaneNearTheBrain)
{
  const std::array<int64_t, 3> low{ { 10, 10, 10 } };
  const std::array<int64_t, 3> high{ { 28, 28, 28 } };
  int                          cutIntoTheBrain = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed)
  {
    std::mt19937_64 generator(seed);
    auto            image = torch::ones({ 1, 40, 40, 40 });
    auto            mask = torch::ones({ 1, 40, 40, 40 });
    const auto      imageBefore = image.clone();
    itk::KDBrainExtractionCropFieldOfView(low, high, image, mask, generator);
    EXPECT_TRUE(torch::equal(imageBefore, torch::ones({ 1, 40, 40, 40 }))) << "the input tensor was written";
    EXPECT_TRUE(torch::equal(image, mask)) << seed;
    // Zeros only along z or y, as one slab at one end; x untouched.
    const int zeroed = static_cast<int>((image == 0).sum().item<int64_t>());
    ASSERT_GT(zeroed, 0) << seed;
    const auto zRows = (image.amax({ 2, 3 }) == 0).sum().item<int64_t>();
    const auto yRows = (image.amax({ 1, 3 }) == 0).sum().item<int64_t>();
    EXPECT_TRUE((zRows > 0) != (yRows > 0)) << seed;
    EXPECT_EQ(zeroed, (zRows + yRows) * 40 * 40) << seed;
    // The plane lies within 8 voxels outside and 12 inside the brain's extreme.
    const int     axis = zRows > 0 ? 0 : 1;
    const auto    rows = zRows > 0 ? zRows : yRows;
    const bool    atLowEnd = image.select(axis + 1, 0).sum().item<float>() == 0;
    const int64_t plane = atLowEnd ? rows : image.size(axis + 1) - rows;
    if (atLowEnd)
    {
      EXPECT_GE(plane, low[axis] - 8) << seed;
      EXPECT_LE(plane, low[axis] + 11) << seed;
      cutIntoTheBrain += plane > low[axis];
    }
    else
    {
      EXPECT_GE(plane, high[axis] - 12) << seed;
      EXPECT_LE(plane, high[axis] + 8) << seed;
      cutIntoTheBrain += plane <= high[axis];
    }
  }
  EXPECT_GT(cutIntoTheBrain, 5);
}

TEST(KDBrainExtractionAugmentation, NonlinearDeformationMovesTheImageAndKeepsTheMaskBinary)
{
  auto image = torch::rand({ 1, 1, 16, 16, 16 }, torch::TensorOptions().dtype(torch::kFloat32));
  auto mask = (image > 0.5).to(torch::kFloat32);
  {
    std::mt19937_64 generator(1);
    auto            same = image.clone();
    auto            sameMask = mask.clone();
    itk::KDBrainExtractionDeformNonlinearly(same, sameMask, 0.0, generator);
    EXPECT_LT((same - image).abs().max().item<float>(), 1e-5f) << "no displacement must be the identity";
    EXPECT_TRUE(torch::equal(sameMask, mask));
  }
  std::mt19937_64 generator(1);
  auto            moved = image.clone();
  auto            movedMask = mask.clone();
  itk::KDBrainExtractionDeformNonlinearly(moved, movedMask, 2.0, generator);
  EXPECT_GT((moved - image).abs().mean().item<float>(), 0.01f);
  EXPECT_TRUE(((movedMask == 0) | (movedMask == 1)).all().item<bool>());
  EXPECT_FALSE(torch::equal(movedMask, mask));
}
