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
#ifndef itkHeadContrastSynthesisImageFilter_hxx
#define itkHeadContrastSynthesisImageFilter_hxx

#include "itkHeadContrastSynthesisImageFilter.h"

#include "itkImageRegionConstIteratorWithIndex.h"
#include "itkRecursiveGaussianImageFilter.h"
#include "itkResampleImageFilter.h"
#include "itkSmoothingRecursiveGaussianImageFilter.h"

#include <cmath>
#include <random>
#include <vector>

namespace itk
{
template <typename TInputImage, typename TOutputImage>
void
HeadContrastSynthesisImageFilter<TInputImage, TOutputImage>::GenerateInputRequestedRegion()
{
  // Blur, resampling and the bias field span the whole image.
  Superclass::GenerateInputRequestedRegion();
  if (auto * input = const_cast<InputImageType *>(this->GetInput()))
  {
    input->SetRequestedRegionToLargestPossibleRegion();
  }
}

template <typename TInputImage, typename TOutputImage>
void
HeadContrastSynthesisImageFilter<TInputImage, TOutputImage>::EnlargeOutputRequestedRegion(DataObject * output)
{
  Superclass::EnlargeOutputRequestedRegion(output);
  output->SetRequestedRegionToLargestPossibleRegion();
}

template <typename TInputImage, typename TOutputImage>
void
HeadContrastSynthesisImageFilter<TInputImage, TOutputImage>::GenerateData()
{
  using FloatImageType = Image<float, ImageDimension>;
  using Range = std::array<double, 2>;
  constexpr unsigned int classes = HeadTissueEnums::NumberOfTissueClasses;
  // Mean intensity ranges per class (in TissueClass order: background, brain
  // CSF, grey matter, white matter, CSF around the brain, bone and air, soft
  // tissue, fat). Within a family the brain ranges do not overlap, so every
  // draw keeps the family's ordering. Fat is bright in T1w and, on the fast
  // spin echo sequences most T2w/PDw scans use, in those too; bone is dark in all.
  static const Range t1w[classes] = { { { 0.0, 0.03 } },  { { 0.08, 0.25 } }, { { 0.40, 0.55 } }, { { 0.62, 0.80 } },
                                      { { 0.08, 0.25 } }, { { 0.02, 0.15 } }, { { 0.25, 0.50 } }, { { 0.75, 1.00 } } };
  static const Range t2w[classes] = { { { 0.0, 0.03 } },  { { 0.75, 1.00 } }, { { 0.42, 0.58 } }, { { 0.28, 0.41 } },
                                      { { 0.75, 1.00 } }, { { 0.02, 0.12 } }, { { 0.12, 0.30 } }, { { 0.45, 0.85 } } };
  static const Range pdw[classes] = { { { 0.0, 0.03 } },  { { 0.73, 0.95 } }, { { 0.57, 0.71 } }, { { 0.43, 0.55 } },
                                      { { 0.73, 0.95 } }, { { 0.03, 0.15 } }, { { 0.30, 0.50 } }, { { 0.60, 0.95 } } };
  // FLAIR: the fluid signal nulled (CSF darker than both tissues), grey
  // matter brighter than white matter as in T2w, fat bright-ish.
  static const Range flair[classes] = {
    { { 0.0, 0.03 } },  { { 0.04, 0.20 } }, { { 0.55, 0.75 } }, { { 0.38, 0.52 } },
    { { 0.04, 0.20 } }, { { 0.02, 0.12 } }, { { 0.25, 0.50 } }, { { 0.50, 0.90 } }
  };

  std::mt19937_64 generator(m_Seed);
  auto            uniform = [&generator](double low, double high) {
    return std::uniform_real_distribution<double>(low, high)(generator);
  };

  // All scalar draws first, in a fixed order.
  for (unsigned int c = 0; c < classes; ++c)
  {
    switch (m_Contrast)
    {
      case ContrastFamily::T1w:
        m_ClassIntensities[c] = uniform(t1w[c][0], t1w[c][1]);
        break;
      case ContrastFamily::T2w:
        m_ClassIntensities[c] = uniform(t2w[c][0], t2w[c][1]);
        break;
      case ContrastFamily::PDw:
        m_ClassIntensities[c] = uniform(pdw[c][0], pdw[c][1]);
        break;
      case ContrastFamily::FLAIR:
        m_ClassIntensities[c] = uniform(flair[c][0], flair[c][1]);
        break;
      default:
        m_ClassIntensities[c] = c == 0 ? uniform(0.0, 0.1) : uniform(0.0, 1.0);
        break;
    }
  }
  if (m_Contrast != ContrastFamily::Random)
  {
    // One fluid inside and around the brain. The layer around it is thin
    // (a few mm), so its voxels share signal with dura and bone: darker than
    // the ventricles, by much in heads with little atrophy and at coarse
    // spacing (in the SPM avg152 T2w template it is darker than cortex).
    const auto brainCSF = static_cast<unsigned int>(TissueClass::BrainCSF);
    const auto extraCSF = static_cast<unsigned int>(TissueClass::ExtraCerebralCSF);
    m_ClassIntensities[extraCSF] = m_ClassIntensities[brainCSF] * uniform(0.6, 1.05);
  }
  std::array<double, classes> texture{};
  for (auto & deviation : texture)
  {
    deviation = uniform(0.0, m_MaximumTextureDeviation);
  }
  m_CorticalCSFFraction = uniform(0.0, m_MaximumCorticalCSFFraction);
  const double blurSigma = uniform(0.0, m_MaximumBlurSigma);
  const bool   thickSlices = m_MaximumSliceThicknessFactor > 1.0 && uniform(0.0, 1.0) < 0.5;
  const auto   thickAxis = static_cast<unsigned int>(std::min(uniform(0.0, ImageDimension), ImageDimension - 1.0));
  const double thickness = uniform(1.0, m_MaximumSliceThicknessFactor);
  const double biasStrength = uniform(0.0, m_MaximumBiasFieldStrength);
  // Bias field log: linear, square and cross terms of the centred coordinates.
  std::array<double, 3 * ImageDimension> biasCoefficients{};
  for (auto & coefficient : biasCoefficients)
  {
    coefficient = uniform(-1.0, 1.0) / ImageDimension;
  }
  const double                     noiseDeviation = uniform(0.0, m_MaximumNoiseDeviation);
  std::normal_distribution<double> normal(0.0, 1.0);

  const InputImageType * input = this->GetInput();
  const auto             region = input->GetLargestPossibleRegion();
  const std::size_t      count = region.GetNumberOfPixels();
  auto                   painted = FloatImageType::New();
  painted->CopyInformation(input);
  painted->SetRegions(region);
  painted->Allocate();
  {
    const auto * labels = input->GetBufferPointer();
    float *      values = painted->GetBufferPointer();
    for (std::size_t i = 0; i < count; ++i)
    {
      const auto c = static_cast<unsigned int>(labels[i]);
      if (c >= classes)
      {
        itkExceptionMacro(<< "voxel value " << c << " is not a tissue class (0 to " << classes - 1 << ")");
      }
      values[i] = static_cast<float>(m_ClassIntensities[c] * (1.0 + texture[c] * normal(generator)));
    }
    if (m_CorticalCSFFraction > 0.0)
    {
      const auto                  layers = BrainRimLayers(labels, region.GetSize());
      const double                csf = m_ClassIntensities[static_cast<unsigned int>(TissueClass::ExtraCerebralCSF)];
      const std::array<double, 3> share{ { 0.0, m_CorticalCSFFraction, 0.5 * m_CorticalCSFFraction } };
      for (std::size_t i = 0; i < count; ++i)
      {
        values[i] = static_cast<float>((1.0 - share[layers[i]]) * values[i] + share[layers[i]] * csf);
      }
    }
  }
  this->UpdateProgress(0.2f);

  typename FloatImageType::Pointer image = painted;
  const auto                       spacing = input->GetSpacing();
  double                           smallestSpacing = spacing[0];
  for (unsigned int d = 1; d < ImageDimension; ++d)
  {
    smallestSpacing = std::min(smallestSpacing, spacing[d]);
  }
  if (blurSigma > 0.1 * smallestSpacing)
  {
    auto blur = SmoothingRecursiveGaussianImageFilter<FloatImageType, FloatImageType>::New();
    blur->SetInput(image);
    blur->SetSigma(blurSigma);
    blur->Update();
    image = blur->GetOutput();
    image->DisconnectPipeline();
  }
  if (this->GetAbortGenerateData())
  {
    ProcessAborted aborted(__FILE__, __LINE__);
    aborted.SetDescription("HeadContrastSynthesisImageFilter aborted");
    throw aborted;
  }
  this->UpdateProgress(0.4f);

  const auto size = region.GetSize();
  if (thickSlices && thickness > 1.05 && size[thickAxis] > 2)
  {
    // The slice profile (FWHM = the thick spacing, less the blur the fine
    // spacing already has), then sampling at the thick spacing and back.
    auto profile = RecursiveGaussianImageFilter<FloatImageType, FloatImageType>::New();
    profile->SetInput(image);
    profile->SetDirection(thickAxis);
    profile->SetSigma(std::sqrt(thickness * thickness - 1.0) * spacing[thickAxis] / 2.355);
    profile->SetZeroOrder();
    using ResampleType = ResampleImageFilter<FloatImageType, FloatImageType>;
    auto coarse = ResampleType::New();
    coarse->SetInput(profile->GetOutput());
    auto coarseSize = size;
    coarseSize[thickAxis] = std::max<SizeValueType>(2, std::lround(size[thickAxis] / thickness));
    auto coarseSpacing = spacing;
    coarseSpacing[thickAxis] = spacing[thickAxis] * size[thickAxis] / coarseSize[thickAxis];
    // Both grids cover the same extent: shift the first centre by half the change.
    typename FloatImageType::PointType origin = input->GetOrigin();
    for (unsigned int d = 0; d < ImageDimension; ++d)
    {
      origin[d] += input->GetDirection()[d][thickAxis] * 0.5 * (coarseSpacing[thickAxis] - spacing[thickAxis]);
    }
    coarse->SetSize(coarseSize);
    coarse->SetOutputSpacing(coarseSpacing);
    coarse->SetOutputOrigin(origin);
    coarse->SetOutputDirection(input->GetDirection());
    coarse->SetOutputStartIndex(region.GetIndex());
    auto back = ResampleType::New();
    back->SetInput(coarse->GetOutput());
    back->SetReferenceImage(input);
    back->UseReferenceImageOn();
    back->Update();
    image = back->GetOutput();
    image->DisconnectPipeline();
  }
  this->UpdateProgress(0.6f);

  this->AllocateOutputs();
  OutputImageType * output = this->GetOutput();
  const float *     values = image->GetBufferPointer();
  OutputPixelType * result = output->GetBufferPointer();
  const auto        start = region.GetIndex();
  std::size_t       i = 0;
  for (ImageRegionConstIteratorWithIndex<InputImageType> it(input, region); !it.IsAtEnd(); ++it, ++i)
  {
    const auto index = it.GetIndex();
    double     logBias = 0.0;
    for (unsigned int d = 0; d < ImageDimension; ++d)
    {
      // Centred coordinate in [-1, 1] along axis d.
      const double x = size[d] > 1 ? 2.0 * (index[d] - start[d]) / (size[d] - 1.0) - 1.0 : 0.0;
      const double y = size[(d + 1) % ImageDimension] > 1
                         ? 2.0 * (index[(d + 1) % ImageDimension] - start[(d + 1) % ImageDimension]) /
                               (size[(d + 1) % ImageDimension] - 1.0) -
                             1.0
                         : 0.0;
      logBias +=
        biasCoefficients[3 * d] * x + biasCoefficients[3 * d + 1] * x * x + biasCoefficients[3 * d + 2] * x * y;
    }
    const double biased = values[i] * std::exp(biasStrength * logBias);
    // Rician: the magnitude of a complex signal with Gaussian noise in both parts.
    const double real = biased + noiseDeviation * normal(generator);
    const double imaginary = noiseDeviation * normal(generator);
    result[i] = static_cast<OutputPixelType>(std::sqrt(real * real + imaginary * imaginary));
  }
  this->UpdateProgress(1.0f);
}

template <typename TInputImage, typename TOutputImage>
std::vector<uint8_t>
HeadContrastSynthesisImageFilter<TInputImage, TOutputImage>::BrainRimLayers(const InputPixelType * labels,
                                                                            const SizeType &       size)
{
  std::array<std::size_t, ImageDimension> stride{};
  std::size_t                             count = 1;
  for (unsigned int d = 0; d < ImageDimension; ++d)
  {
    stride[d] = count;
    count *= size[d];
  }
  auto isBrain = [labels](std::size_t i) {
    const auto c = static_cast<TissueClass>(labels[i]);
    return c == TissueClass::BrainCSF || c == TissueClass::GreyMatter || c == TissueClass::WhiteMatter;
  };
  std::vector<uint8_t> layers(count, 0);
  for (uint8_t layer = 1; layer <= 2; ++layer)
  {
    // A brain voxel joins this layer when a face neighbour is outside the
    // brain (layer 1; the image's edge counts as outside) or in layer 1.
    auto isOuter = [&](std::size_t j) { return layer == 1 ? !isBrain(j) : layers[j] == 1; };
    for (std::size_t i = 0; i < count; ++i)
    {
      if (!isBrain(i) || layers[i] != 0)
      {
        continue;
      }
      bool touches = false;
      for (unsigned int d = 0; d < ImageDimension && !touches; ++d)
      {
        const std::size_t coordinate = (i / stride[d]) % size[d];
        touches = coordinate == 0 || coordinate + 1 == size[d] || isOuter(i - stride[d]) || isOuter(i + stride[d]);
      }
      if (touches)
      {
        layers[i] = layer;
      }
    }
  }
  return layers;
}

template <typename TInputImage, typename TOutputImage>
void
HeadContrastSynthesisImageFilter<TInputImage, TOutputImage>::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  os << indent << "Contrast: " << m_Contrast << std::endl;
  os << indent << "Seed: " << m_Seed << std::endl;
  os << indent << "MaximumTextureDeviation: " << m_MaximumTextureDeviation << std::endl;
  os << indent << "MaximumCorticalCSFFraction: " << m_MaximumCorticalCSFFraction << std::endl;
  os << indent << "MaximumBlurSigma: " << m_MaximumBlurSigma << std::endl;
  os << indent << "MaximumSliceThicknessFactor: " << m_MaximumSliceThicknessFactor << std::endl;
  os << indent << "MaximumBiasFieldStrength: " << m_MaximumBiasFieldStrength << std::endl;
  os << indent << "MaximumNoiseDeviation: " << m_MaximumNoiseDeviation << std::endl;
  os << indent << "ClassIntensities:";
  for (const double value : m_ClassIntensities)
  {
    os << " " << value;
  }
  os << std::endl;
  os << indent << "CorticalCSFFraction: " << m_CorticalCSFFraction << std::endl;
}
} // end namespace itk

#endif // itkHeadContrastSynthesisImageFilter_hxx
