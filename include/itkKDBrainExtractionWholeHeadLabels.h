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
#ifndef itkKDBrainExtractionWholeHeadLabels_h
#define itkKDBrainExtractionWholeHeadLabels_h

#include "KDBrainExtractionTrainingExport.h"
#include "itkHeadTissueEnums.h"
#include "itkImage.h"

#include <string>

namespace itk
{
/** \class KDBrainExtractionWholeHeadLabels
 * \brief Tissue classes and brain masks from whole-head label maps in
 * FreeSurfer codes (as SynthSeg's training maps): subjects that have no image,
 * whose heads the trainer paints in random contrasts.
 *
 * Codes 1-499 except 24 are brain structures, 24 is all CSF (around the brain
 * and in the sulci), 500 and above are head tissues outside the brain (skull,
 * scalp, eyes, ...), 0 is air.
 *
 * The brain mask follows the definition of the IXI masks the models are
 * trained on: a smooth envelope at the brain's outer surface, sulcal CSF
 * inside and the CSF between brain and skull outside. It is the brain labels
 * closed by a ball (physical radius), restricted to brain and CSF voxels,
 * largest component, holes filled. The default radius was chosen by
 * scripts/measure-label-mask-definition.py (docs/contrast-synthesis.md).
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtractionTraining_EXPORT KDBrainExtractionWholeHeadLabels
{
public:
  using LabelImageType = Image<unsigned short, 3>;
  using MaskImageType = Image<unsigned char, 3>;
  using TissueClassImageType = Image<unsigned char, 3>;
  using TissueClass = HeadTissueEnums::TissueClass;

  /** The closing radius (mm) of the default brain-mask rule. */
  static constexpr double DefaultClosingRadius = 5.0;

  /** Brain structure: codes 1-499 except CSF (24). */
  static bool
  IsBrainLabel(unsigned int label);

  /** The class painted for \a label of a voxel inside (\a inBrainMask) or
   * outside the brain mask. CSF (24) is brain CSF inside the mask and CSF
   * around the brain outside it. */
  static TissueClass
  TissueClassOfLabel(unsigned int label, bool inBrainMask);

  /** The brain mask (0/1) of a label map, on its grid. Throws, naming
   * \a description, if the map has no brain label. */
  static MaskImageType::Pointer
  MakeBrainMask(const LabelImageType * labels, const std::string & description,
                double closingRadius = DefaultClosingRadius);

  /** The tissue class of every voxel, given the map's brain mask (same grid). */
  static TissueClassImageType::Pointer
  MakeTissueClasses(const LabelImageType * labels, const MaskImageType * brainMask);
};
} // end namespace itk

#endif // itkKDBrainExtractionWholeHeadLabels_h
