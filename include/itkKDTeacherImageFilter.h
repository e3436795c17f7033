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
#ifndef itkKDTeacherImageFilter_h
#define itkKDTeacherImageFilter_h

#include "itkKDBrainExtractionImageFilterBase.h"

namespace itk
{
/** \class KDTeacherImageFilter
 * \brief Brain-only grayscale image of a 3D head MRI, predicted by the teacher UNet++.
 *
 * The teacher learns to reproduce the input with everything but the brain
 * removed. Its output is brought back to the input grid (linear resampling)
 * and to the input's intensity units by inverting the percentile
 * normalisation; voxels the network sets to (nearly) zero are written as 0.
 *
 * \ingroup KDBrainExtraction
 */
template <typename TInputImage, typename TOutputImage = Image<float, TInputImage::ImageDimension>>
class ITK_TEMPLATE_EXPORT KDTeacherImageFilter : public KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(KDTeacherImageFilter);

  using Self = KDTeacherImageFilter;
  using Superclass = KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  itkNewMacro(Self);
  itkTypeMacro(KDTeacherImageFilter, KDBrainExtractionImageFilterBase);

  using InputImageType = TInputImage;
  using OutputImageType = TOutputImage;
  using OutputPixelType = typename OutputImageType::PixelType;
  using typename Superclass::FloatImageType;
  using typename Superclass::IntensityWindow;

  /** Normalised outputs below this are background (written as 0). */
  itkSetClampMacro(BackgroundLevel, double, 0.0, 1.0);
  itkGetConstMacro(BackgroundLevel, double);

protected:
  KDTeacherImageFilter();
  ~KDTeacherImageFilter() override = default;

  void
  PrintSelf(std::ostream & os, Indent indent) const override;

  void
  GenerateData() override;

private:
  double m_BackgroundLevel{ 1e-3 };
};
} // end namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkKDTeacherImageFilter.hxx"
#endif

#endif // itkKDTeacherImageFilter_h
