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
#ifndef itkHeadContrastSynthesisImageFilter_h
#define itkHeadContrastSynthesisImageFilter_h

#include "itkHeadTissueEnums.h"
#include "itkImageToImageFilter.h"

#include <array>
#include <vector>

namespace itk
{
/** \class HeadContrastSynthesisImageFilter
 * \brief A random MR-like head image painted from a tissue class map, for
 * training networks that must work on contrasts they have no real data for.
 *
 * The input is a class map with the codes of HeadTissueEnums::TissueClass (see
 * HeadTissueClassImageFilter). Each class gets a random mean intensity in the
 * range of the chosen contrast family, which fixes the ordering that defines
 * the family (T1w: white > grey matter > CSF; T2w: CSF > grey > white matter;
 * PDw: CSF > grey > white matter, with less spread; FLAIR: grey > white matter > CSF;
 * Random: any order), and a
 * random within-class texture. The brain's outer voxels are mixed with CSF
 * around the brain (sulci and the thin fluid over the cortex are finer than
 * the labels, and the brain mask takes them in). The image then goes through
 * what a scanner and a resampling do to it: a Gaussian blur (partial volume),
 * with probability 1/2 a loss of resolution along one axis (a thick slice
 * profile, sampled at the coarse spacing and interpolated back), a smooth
 * multiplicative bias field, and Rician noise. Intensities are relative, about [0, 1].
 *
 * Every random number comes from one generator seeded with Seed, drawn in a
 * fixed order: the same seed and class map give the same image. The output
 * has the grid of the input.
 *
 * \ingroup KDBrainExtraction
 */
template <typename TInputImage, typename TOutputImage = Image<float, TInputImage::ImageDimension>>
class ITK_TEMPLATE_EXPORT HeadContrastSynthesisImageFilter : public ImageToImageFilter<TInputImage, TOutputImage>
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(HeadContrastSynthesisImageFilter);

  using Self = HeadContrastSynthesisImageFilter;
  using Superclass = ImageToImageFilter<TInputImage, TOutputImage>;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  itkNewMacro(Self);
  itkTypeMacro(HeadContrastSynthesisImageFilter, ImageToImageFilter);

  static constexpr unsigned int ImageDimension = TInputImage::ImageDimension;
  using InputImageType = TInputImage;
  using OutputImageType = TOutputImage;
  using OutputPixelType = typename OutputImageType::PixelType;
  using TissueClass = HeadTissueEnums::TissueClass;
  using ContrastFamily = HeadTissueEnums::ContrastFamily;
  using ClassIntensitiesType = std::array<double, HeadTissueEnums::NumberOfTissueClasses>;

  itkSetEnumMacro(Contrast, ContrastFamily);
  itkGetEnumMacro(Contrast, ContrastFamily);

  itkSetMacro(Seed, uint64_t);
  itkGetConstMacro(Seed, uint64_t);

  /** Largest relative standard deviation of the texture within a class. */
  itkSetClampMacro(MaximumTextureDeviation, double, 0.0, 1.0);
  itkGetConstMacro(MaximumTextureDeviation, double);

  /** Largest share of CSF mixed into the brain's outermost voxel layer (half
   * of it into the next layer in): the sulci and the thin CSF over the
   * cortex, which make the brain's rim brighter than the cortex beneath in
   * T2w and darker in T1w; 0 turns it off. */
  itkSetClampMacro(MaximumCorticalCSFFraction, double, 0.0, 1.0);
  itkGetConstMacro(MaximumCorticalCSFFraction, double);

  /** Largest standard deviation (mm) of the Gaussian blur. */
  itkSetClampMacro(MaximumBlurSigma, double, 0.0, 10.0);
  itkGetConstMacro(MaximumBlurSigma, double);

  /** Largest slice thickness, in multiples of the spacing, of the resolution
   * loss along one axis; 1 turns it off. */
  itkSetClampMacro(MaximumSliceThicknessFactor, double, 1.0, 10.0);
  itkGetConstMacro(MaximumSliceThicknessFactor, double);

  /** Largest amplitude of the bias field's logarithm. */
  itkSetClampMacro(MaximumBiasFieldStrength, double, 0.0, 2.0);
  itkGetConstMacro(MaximumBiasFieldStrength, double);

  /** Largest noise standard deviation (intensities are about [0, 1]). */
  itkSetClampMacro(MaximumNoiseDeviation, double, 0.0, 1.0);
  itkGetConstMacro(MaximumNoiseDeviation, double);

  /** After an update: the mean intensity drawn for each class. */
  itkGetConstReferenceMacro(ClassIntensities, ClassIntensitiesType);

  /** After an update: the share of CSF drawn for the brain's outermost layer. */
  itkGetConstMacro(CorticalCSFFraction, double);

protected:
  HeadContrastSynthesisImageFilter() = default;
  ~HeadContrastSynthesisImageFilter() override = default;

  void
  PrintSelf(std::ostream & os, Indent indent) const override;

  void
  GenerateInputRequestedRegion() override;

  void
  EnlargeOutputRequestedRegion(DataObject * output) override;

  void
  GenerateData() override;

private:
  using InputPixelType = typename InputImageType::PixelType;
  using SizeType = typename InputImageType::SizeType;

  /** Per voxel of a buffer of class codes: 1 for the brain's outermost voxel
   * layer, 2 for the layer beneath, 0 elsewhere. */
  static std::vector<uint8_t>
  BrainRimLayers(const InputPixelType * labels, const SizeType & size);

  ContrastFamily       m_Contrast{ ContrastFamily::T1w };
  uint64_t             m_Seed{ 0 };
  double               m_MaximumTextureDeviation{ 0.1 };
  double               m_MaximumCorticalCSFFraction{ 0.5 };
  double               m_MaximumBlurSigma{ 2.0 };
  double               m_MaximumSliceThicknessFactor{ 3.0 };
  double               m_MaximumBiasFieldStrength{ 0.4 };
  double               m_MaximumNoiseDeviation{ 0.04 };
  ClassIntensitiesType m_ClassIntensities{};
  double               m_CorticalCSFFraction{ 0.0 };
};
} // end namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkHeadContrastSynthesisImageFilter.hxx"
#endif

#endif // itkHeadContrastSynthesisImageFilter_h
