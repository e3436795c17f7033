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
#include "itkImageRegionIteratorWithIndex.h"
#include "itkKDBrainExtractionWholeHeadLabels.h"

#include <cmath>
#include <functional>

namespace
{
using itk::KDBrainExtractionWholeHeadLabels;
using LabelImageType = KDBrainExtractionWholeHeadLabels::LabelImageType;
using TissueClass = itk::HeadTissueEnums::TissueClass;

/** A ball head at 1 mm: white matter (r < 12 mm) in cortex (r < 20), cut by
 * a 1 mm wide sulcus of CSF from the top down to the white matter; a 4 mm layer of CSF
 * around it, 5 mm of skull (515) and scalp (507) out to r = 34. */
LabelImageType::Pointer
MakeBallHead(bool withBrain = true)
{
  auto labels = LabelImageType::New();
  labels->SetRegions(LabelImageType::SizeType{ { 80, 80, 80 } });
  labels->Allocate();
  labels->FillBuffer(0);
  for (itk::ImageRegionIteratorWithIndex<LabelImageType> it(labels, labels->GetBufferedRegion()); !it.IsAtEnd(); ++it)
  {
    const auto     index = it.GetIndex();
    const double   x = index[0] - 40.0;
    const double   y = index[1] - 40.0;
    const double   z = index[2] - 40.0;
    const double   r = std::sqrt(x * x + y * y + z * z);
    unsigned short label = 0;
    if (r < 12)
    {
      label = 2;
    }
    else if (r < 20)
    {
      label = (std::abs(x) < 1.0 && z > 0) ? 24 : 3;
    }
    else if (r < 24)
    {
      label = 24;
    }
    else if (r < 29)
    {
      label = 515;
    }
    else if (r < 34)
    {
      label = 507;
    }
    it.Set(withBrain || label >= 24 ? label : (label == 0 ? 0 : 507));
  }
  return labels;
}

unsigned char
MaskAt(const KDBrainExtractionWholeHeadLabels::MaskImageType * mask, int x, int y, int z)
{
  return mask->GetPixel({ { x, y, z } });
}
} // namespace

TEST(KDBrainExtractionWholeHeadLabels, BrainMaskTakesInTheSulciButNotTheCSFAroundTheBrain)
{
  const auto labels = MakeBallHead();
  const auto closed = KDBrainExtractionWholeHeadLabels::MakeBrainMask(labels, "ball", 3.0);
  const auto gyral = KDBrainExtractionWholeHeadLabels::MakeBrainMask(labels, "ball", 0.0);
  // In the sulcus, 16 mm above the centre: inside the envelope, not a brain label.
  EXPECT_EQ(MaskAt(closed, 40, 40, 56), 1);
  EXPECT_EQ(MaskAt(gyral, 40, 40, 56), 0);
  // In the CSF around the brain, in the skull and outside: never.
  for (const auto * mask : { closed.GetPointer(), gyral.GetPointer() })
  {
    EXPECT_EQ(MaskAt(mask, 40, 40, 40 - 22), 0);
    EXPECT_EQ(MaskAt(mask, 40 + 26, 40, 40), 0);
    EXPECT_EQ(MaskAt(mask, 0, 0, 0), 0);
    EXPECT_EQ(MaskAt(mask, 40, 40 + 15, 40), 1);
  }
  EXPECT_THROW(KDBrainExtractionWholeHeadLabels::MakeBrainMask(labels, "ball", -1.0), itk::ExceptionObject);
}

TEST(KDBrainExtractionWholeHeadLabels, TissueClassesSplitTheCSFByTheMask)
{
  const auto labels = MakeBallHead();
  const auto mask = KDBrainExtractionWholeHeadLabels::MakeBrainMask(labels, "ball", 3.0);
  const auto classes = KDBrainExtractionWholeHeadLabels::MakeTissueClasses(labels, mask);
  const auto at = [&classes](int x, int y, int z) {
    return static_cast<TissueClass>(classes->GetPixel({ { x, y, z } }));
  };
  EXPECT_EQ(at(40, 40, 40), TissueClass::WhiteMatter);
  EXPECT_EQ(at(40, 40 + 15, 40), TissueClass::GreyMatter);
  EXPECT_EQ(at(40, 40, 56), TissueClass::BrainCSF); // sulcal
  EXPECT_EQ(at(40, 40, 40 - 22), TissueClass::ExtraCerebralCSF);
  EXPECT_EQ(at(40 + 26, 40, 40), TissueClass::BoneAndAir);
  EXPECT_EQ(at(40 + 31, 40, 40), TissueClass::SoftTissue);
  EXPECT_EQ(at(0, 0, 0), TissueClass::Background);
  EXPECT_EQ(KDBrainExtractionWholeHeadLabels::TissueClassOfLabel(4, true), TissueClass::BrainCSF);
  EXPECT_EQ(KDBrainExtractionWholeHeadLabels::TissueClassOfLabel(511, false), TissueClass::Fat);
  EXPECT_FALSE(KDBrainExtractionWholeHeadLabels::IsBrainLabel(24));
  EXPECT_FALSE(KDBrainExtractionWholeHeadLabels::IsBrainLabel(515));
  EXPECT_TRUE(KDBrainExtractionWholeHeadLabels::IsBrainLabel(17));
}

TEST(KDBrainExtractionWholeHeadLabels, AMapWithoutBrainIsRefusedByName)
{
  try
  {
    KDBrainExtractionWholeHeadLabels::MakeBrainMask(MakeBallHead(false), "empty_head.nii.gz");
    FAIL() << "no exception";
  }
  catch (const itk::ExceptionObject & error)
  {
    EXPECT_NE(std::string(error.GetDescription()).find("empty_head.nii.gz: the label map has no brain label"),
              std::string::npos)
      << error.GetDescription();
  }
}
