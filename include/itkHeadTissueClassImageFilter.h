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
#ifndef itkHeadTissueClassImageFilter_h
#define itkHeadTissueClassImageFilter_h

#include "itkHeadTissueEnums.h"
#include "itkImageToImageFilter.h"

#include <array>
#include <map>
#include <vector>

namespace itk
{
/** \class HeadTissueClassImageFilter
 * \brief Tissue classes of a whole head from a T1w image, its brain label map
 * and (optionally) its brain mask: the input of contrast synthesis.
 *
 * Inside the brain the classes come from the label map (for instance a DLMUSE
 * parcellation): each label is one tissue. Labels whose tissue is known from
 * anatomy (KnownLabelClasses; default: the MUSE codes of the ventricles,
 * cortex, cerebellar cortex, hippocampus, amygdala, lobar and cerebellar white
 * matter, see MUSELabelClasses()) take that class. Every other label (deep
 * nuclei, brainstem, codes the table does not name) takes the class whose
 * T1w intensity centre is nearest to the label's median; a class's centre is
 * the count-weighted mean of its known labels' medians. Intensity alone
 * cannot classify the labels: at 2 mm, cortical labels darkened by the sulcal
 * fluid they contain have medians as low as the ventricles', and a bias field
 * makes some lobes' white matter as dark as other lobes' cortex. When the
 * label map lacks known labels of one of the three classes, all labels are
 * clustered into three groups by their medians (weighted 1D k-means, weights =
 * voxel counts), the darkest being CSF. Brain voxels without a label (holes
 * filled in the mask) take the class whose centre is nearest to their own
 * intensity.
 *
 * Outside the brain there are no labels, so the T1w intensities decide. The
 * head is the largest connected region above Otsu's threshold plus the brain,
 * closed by a ball of HeadClosingRadius mm and with its holes filled (which
 * brings the dark skull and CSF inside it). Its non-brain voxels
 * are clustered into dark, intermediate and bright (1D k-means). Dark voxels
 * within ExtraCerebralCSFDistance millimetres of the brain are the CSF around
 * it (dark in T1w, bright in T2w); farther ones are bone and air. Intermediate
 * voxels are soft tissue (muscle, dura, skin, eyes), bright ones fat and marrow.
 *
 * Inputs: the T1w image (input 0), the label map (LabelImage, required; any
 * label > 0 is brain), the brain mask (BrainMaskImage, optional; voxels > 0 are
 * brain). All three must share one grid. The output is a class map with the
 * codes of HeadTissueEnums::TissueClass on that grid.
 *
 * \ingroup KDBrainExtraction
 */
template <typename TInputImage, typename TLabelImage,
          typename TOutputImage = Image<unsigned char, TInputImage::ImageDimension>>
class ITK_TEMPLATE_EXPORT HeadTissueClassImageFilter : public ImageToImageFilter<TInputImage, TOutputImage>
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(HeadTissueClassImageFilter);

  using Self = HeadTissueClassImageFilter;
  using Superclass = ImageToImageFilter<TInputImage, TOutputImage>;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  itkNewMacro(Self);
  itkTypeMacro(HeadTissueClassImageFilter, ImageToImageFilter);

  static constexpr unsigned int ImageDimension = TInputImage::ImageDimension;
  static_assert(TLabelImage::ImageDimension == ImageDimension && TOutputImage::ImageDimension == ImageDimension,
                "The image, label map and class map must have one dimension");

  using InputImageType = TInputImage;
  using LabelImageType = TLabelImage;
  using LabelPixelType = typename LabelImageType::PixelType;
  using OutputImageType = TOutputImage;
  using TissueClass = HeadTissueEnums::TissueClass;
  /** Intensity centres of the three clusters, darkest first. */
  using CentresType = std::array<double, 3>;
  using LabelClassMapType = std::map<LabelPixelType, TissueClass>;
  using MaskImageType = Image<unsigned char, ImageDimension>;
  using DistanceImageType = Image<float, ImageDimension>;

  /** The brain label map (for instance DLMUSE); required. */
  itkSetInputMacro(LabelImage, LabelImageType);
  itkGetInputMacro(LabelImage, LabelImageType);

  /** The brain mask; optional (default: label > 0). */
  itkSetInputMacro(BrainMaskImage, LabelImageType);
  itkGetInputMacro(BrainMaskImage, LabelImageType);

  /** Radius (mm) of the closing that brings the dark band of CSF and skull
   * between brain and scalp into the head. */
  itkSetClampMacro(HeadClosingRadius, double, 0.0, NumericTraits<double>::max());
  itkGetConstMacro(HeadClosingRadius, double);

  /** Brain labels whose tissue is known whatever their intensity (default:
   * MUSELabelClasses()); empty: decide by intensity alone. */
  void
  SetKnownLabelClasses(const LabelClassMapType & table)
  {
    if (table != m_KnownLabelClasses)
    {
      m_KnownLabelClasses = table;
      this->Modified();
    }
  }
  const LabelClassMapType &
  GetKnownLabelClasses() const
  {
    return m_KnownLabelClasses;
  }

  /** The tissue of the MUSE ROI codes (as in DLMUSE label maps) that are
   * unambiguous: ventricles (4, 11, 49-52) are CSF; cortex (100-207),
   * cerebellar cortex (38, 39), hippocampus (47, 48) and amygdala (31, 32) are
   * grey matter; lobar white matter, fornix, internal capsule and corpus
   * callosum (81-95) and cerebellar white matter (40, 41) are white matter.
   * Deep nuclei and the brainstem are left to their intensity: in T1w the
   * thalamus and pallidum are nearly as bright as white matter. */
  static LabelClassMapType
  MUSELabelClasses();

  /** Dark non-brain voxels this close to the brain (mm) are CSF, not bone. */
  itkSetClampMacro(ExtraCerebralCSFDistance, double, 0.0, NumericTraits<double>::max());
  itkGetConstMacro(ExtraCerebralCSFDistance, double);

  /** After an update: the T1w intensity centres of CSF, grey and white matter
   * (from the labels), and of the dark, intermediate and bright non-brain
   * tissue. */
  itkGetConstReferenceMacro(BrainCentres, CentresType);
  itkGetConstReferenceMacro(NonBrainCentres, CentresType);

  /** After an update: the class given to each brain label. */
  const LabelClassMapType &
  GetLabelClasses() const
  {
    return m_LabelClasses;
  }

  /** Weighted 1D k-means with \a clusters clusters; returns the sorted
   * centres. Deterministic: starts from the weighted (2k+1)/(2 clusters)
   * quantiles (1/6, 1/2 and 5/6 for three). */
  static std::vector<double>
  ClusterIntensities(const std::vector<double> & values, const std::vector<double> & weights, unsigned int clusters);

protected:
  HeadTissueClassImageFilter();
  ~HeadTissueClassImageFilter() override = default;

  void
  PrintSelf(std::ostream & os, Indent indent) const override;

  void
  GenerateInputRequestedRegion() override;

  void
  EnlargeOutputRequestedRegion(DataObject * output) override;

  void
  GenerateData() override;

  /** Distance in mm to the nearest voxel > 0 of \a mask (negative inside). */
  static typename DistanceImageType::Pointer
  MillimetresFrom(const MaskImageType * mask);

private:
  LabelClassMapType m_KnownLabelClasses{ MUSELabelClasses() };
  double            m_HeadClosingRadius{ 10.0 };
  double            m_ExtraCerebralCSFDistance{ 4.0 };
  CentresType       m_BrainCentres{ { 0.0, 0.0, 0.0 } };
  CentresType       m_NonBrainCentres{ { 0.0, 0.0, 0.0 } };
  LabelClassMapType m_LabelClasses;
};
} // end namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkHeadTissueClassImageFilter.hxx"
#endif

#endif // itkHeadTissueClassImageFilter_h
