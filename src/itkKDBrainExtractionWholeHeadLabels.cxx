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
#include "itkKDBrainExtractionWholeHeadLabels.h"

#include "itkKDBrainExtractionPreprocessing.h"

#include <algorithm>
#include <cmath>

namespace itk
{
namespace
{
/** An allocated image on the grid of \a labels. */
template <typename TImage>
typename TImage::Pointer
AllocateOnGridOf(const KDBrainExtractionWholeHeadLabels::LabelImageType * labels)
{
  auto image = TImage::New();
  image->CopyInformation(labels);
  image->SetRegions(labels->GetBufferedRegion());
  image->Allocate();
  return image;
}
} // namespace

bool
KDBrainExtractionWholeHeadLabels::IsBrainLabel(unsigned int label)
{
  return label > 0 && label < 500 && label != 24;
}

KDBrainExtractionWholeHeadLabels::TissueClass
KDBrainExtractionWholeHeadLabels::TissueClassOfLabel(unsigned int label, bool inBrainMask)
{
  switch (label)
  {
    case 0:
      return TissueClass::Background;
    case 24: // all CSF: sulcal inside the envelope, the layer around the brain outside
      return inBrainMask ? TissueClass::BrainCSF : TissueClass::ExtraCerebralCSF;
    // Ventricles, choroid plexus.
    case 4:
    case 5:
    case 14:
    case 15:
    case 31:
    case 43:
    case 44:
    case 63:
    case 72:
      return TissueClass::BrainCSF;
    // Cerebral and cerebellar white matter, brainstem, ventral diencephalon, optic chiasm.
    case 2:
    case 7:
    case 16:
    case 28:
    case 41:
    case 46:
    case 60:
    case 85:
      return TissueClass::WhiteMatter;
    // Outside the brain (SynthSeg's head labels, read off the maps: 515 is the
    // 5-6 mm shell around the CSF, 507 the thick layer over it, 511 the
    // outermost one, 509 the cavities in front of the frontal lobes, 514 the
    // venous sinuses; the others small structures of the face and neck).
    case 502:
    case 509:
    case 514:
    case 515:
      return TissueClass::BoneAndAir;
    case 511:
    case 516:
      return TissueClass::Fat;
    default:
      break;
  }
  if (IsBrainLabel(label))
  {
    return TissueClass::GreyMatter; // cortex, deep nuclei, cerebellar cortex, other structures
  }
  return TissueClass::SoftTissue;
}

KDBrainExtractionWholeHeadLabels::MaskImageType::Pointer
KDBrainExtractionWholeHeadLabels::MakeBrainMask(const LabelImageType * labels, const std::string & description,
                                                double closingRadius)
{
  if (!(closingRadius >= 0.0 && closingRadius <= 20.0))
  {
    itkGenericExceptionMacro(<< "the closing radius must be in [0, 20] mm, got " << closingRadius);
  }
  auto              mask = AllocateOnGridOf<MaskImageType>(labels);
  const std::size_t count = labels->GetBufferedRegion().GetNumberOfPixels();
  const auto *      label = labels->GetBufferPointer();
  auto *            voxel = mask->GetBufferPointer();
  std::size_t       brainVoxels = 0;
  for (std::size_t i = 0; i < count; ++i)
  {
    voxel[i] = IsBrainLabel(label[i]) ? 1 : 0;
    brainVoxels += voxel[i];
  }
  if (brainVoxels == 0)
  {
    itkGenericExceptionMacro(<< description << ": the label map has no brain label (codes 1-499 other than 24)");
  }
  // A closing by a ball: growing then shrinking by the radius fills
  // concavities narrower than the ball (sulci and fissures, whose CSF the
  // envelope contains) and leaves the CSF layer over the convex surface out.
  KDBrainExtractionPreprocessing::MoveMaskBorder(mask, closingRadius);
  KDBrainExtractionPreprocessing::MoveMaskBorder(mask, -closingRadius);
  auto   envelope = AllocateOnGridOf<KDBrainExtractionPreprocessing::ImageType>(labels);
  auto * inside = envelope->GetBufferPointer();
  for (std::size_t i = 0; i < count; ++i)
  {
    inside[i] = voxel[i] != 0 && (IsBrainLabel(label[i]) || label[i] == 24) ? 1.0f : 0.0f;
  }
  return KDBrainExtractionPreprocessing::MakeBrainMask(envelope, 0.5, true, true);
}

KDBrainExtractionWholeHeadLabels::TissueClassImageType::Pointer
KDBrainExtractionWholeHeadLabels::MakeTissueClasses(const LabelImageType * labels, const MaskImageType * brainMask)
{
  if (brainMask->GetBufferedRegion() != labels->GetBufferedRegion())
  {
    itkGenericExceptionMacro(<< "the brain mask and the label map must share their grid");
  }
  auto              classes = AllocateOnGridOf<TissueClassImageType>(labels);
  const std::size_t count = labels->GetBufferedRegion().GetNumberOfPixels();
  const auto *      label = labels->GetBufferPointer();
  const auto *      inside = brainMask->GetBufferPointer();
  auto *            tissue = classes->GetBufferPointer();
  for (std::size_t i = 0; i < count; ++i)
  {
    TissueClass value = TissueClassOfLabel(label[i], inside[i] != 0);
    // Brain structures outside the envelope (rare specks cut off by the
    // largest-component rule) are painted as the tissue around the brain.
    if (inside[i] == 0 && IsBrainLabel(label[i]))
    {
      value = TissueClass::ExtraCerebralCSF;
    }
    tissue[i] = static_cast<unsigned char>(value);
  }
  return classes;
}
} // end namespace itk
