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
#ifndef itkKDTeacherImageFilter_hxx
#define itkKDTeacherImageFilter_hxx

#include "itkKDTeacherImageFilter.h"

#include <cmath>
#include <type_traits>

namespace itk
{
template <typename TInputImage, typename TOutputImage>
KDTeacherImageFilter<TInputImage, TOutputImage>::KDTeacherImageFilter()
  : Superclass(Superclass::RoleEnum::Teacher)
{}

template <typename TInputImage, typename TOutputImage>
void
KDTeacherImageFilter<TInputImage, TOutputImage>::GenerateData()
{
  constexpr double networkShare = 0.95;
  this->UpdateProgress(0.0f);
  IntensityWindow                        window;
  const typename FloatImageType::Pointer brain = this->RunNetwork(window, networkShare);
  this->CheckAbort();

  // Allocated after the network, whose peak memory it would add to; the
  // requested region is the largest (EnlargeOutputRequestedRegion).
  this->AllocateOutputs();
  OutputImageType * output = this->GetOutput();
  if (output->GetBufferedRegion() != this->GetInput()->GetLargestPossibleRegion())
  {
    itkExceptionMacro(<< "the output covers the whole input (" << this->GetInput()->GetLargestPossibleRegion()
                      << "), not " << output->GetBufferedRegion());
  }

  const double      scale = window.Upper - window.Lower;
  const double      lowest = static_cast<double>(NumericTraits<OutputPixelType>::NonpositiveMin());
  const double      highest = static_cast<double>(NumericTraits<OutputPixelType>::max());
  const float *     brainVoxels = brain->GetBufferPointer();
  OutputPixelType * outputVoxels = output->GetBufferPointer();
  const std::size_t numberOfVoxels = output->GetBufferedRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < numberOfVoxels; ++i)
  {
    double value = brainVoxels[i] < m_BackgroundLevel ? 0.0 : window.Lower + scale * brainVoxels[i];
    if constexpr (std::is_integral<OutputPixelType>::value)
    {
      value = std::round(value);
    }
    outputVoxels[i] = static_cast<OutputPixelType>(std::clamp(value, lowest, highest));
  }
  this->UpdateProgress(1.0f);
}

template <typename TInputImage, typename TOutputImage>
void
KDTeacherImageFilter<TInputImage, TOutputImage>::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  os << indent << "BackgroundLevel: " << m_BackgroundLevel << std::endl;
}
} // end namespace itk

#endif // itkKDTeacherImageFilter_hxx
