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
#ifndef itkHeadTissueEnums_h
#define itkHeadTissueEnums_h

#include <cstdint>
#include <ostream>

namespace itk
{
/** \class HeadTissueEnums
 * \brief The tissue classes of a head that contrast synthesis paints, and the
 * contrast families it paints them in.
 *
 * HeadTissueClassImageFilter writes the classes; HeadContrastSynthesisImageFilter
 * reads them. The codes are the voxel values of a tissue class map.
 *
 * \ingroup KDBrainExtraction
 */
class HeadTissueEnums
{
public:
  /** \ingroup KDBrainExtraction */
  enum class TissueClass : uint8_t
  {
    /** Air around the head. */
    Background = 0,
    /** Brain labels of CSF-like T1w intensity: ventricles. */
    BrainCSF = 1,
    /** Brain labels of grey-matter-like T1w intensity: cortex, deep nuclei. */
    GreyMatter = 2,
    /** Brain labels of white-matter-like T1w intensity. */
    WhiteMatter = 3,
    /** Dark voxels just outside the brain: the CSF around it. */
    ExtraCerebralCSF = 4,
    /** Dark voxels farther from the brain: bone, air cavities. */
    BoneAndAir = 5,
    /** Intermediate voxels outside the brain: muscle, dura, eyes, skin. */
    SoftTissue = 6,
    /** Bright voxels outside the brain: fat, marrow, scalp. */
    Fat = 7
  };
  static constexpr unsigned int NumberOfTissueClasses = 8;

  /** \ingroup KDBrainExtraction */
  enum class ContrastFamily : uint8_t
  {
    /** White matter brighter than grey matter, CSF dark. */
    T1w = 0,
    /** CSF bright, grey matter brighter than white matter. */
    T2w = 1,
    /** Proton density: CSF a little brighter than grey, grey than white matter. */
    PDw = 2,
    /** Every class an independent random intensity. */
    Random = 3,
    /** Fluid-attenuated T2w: CSF dark, grey matter brighter than white matter. */
    FLAIR = 4
  };
};

inline std::ostream &
operator<<(std::ostream & out, const HeadTissueEnums::TissueClass value)
{
  static const char * const names[] = { "Background",       "BrainCSF",   "GreyMatter", "WhiteMatter",
                                        "ExtraCerebralCSF", "BoneAndAir", "SoftTissue", "Fat" };
  const auto                index = static_cast<unsigned int>(value);
  return out << (index < HeadTissueEnums::NumberOfTissueClasses ? names[index] : "unknown tissue class");
}

inline std::ostream &
operator<<(std::ostream & out, const HeadTissueEnums::ContrastFamily value)
{
  static const char * const names[] = { "T1w", "T2w", "PDw", "Random", "FLAIR" };
  const auto                index = static_cast<unsigned int>(value);
  return out << (index < 5 ? names[index] : "unknown contrast family");
}
} // end namespace itk

#endif // itkHeadTissueEnums_h
