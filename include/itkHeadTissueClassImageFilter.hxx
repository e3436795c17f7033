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
#ifndef itkHeadTissueClassImageFilter_hxx
#define itkHeadTissueClassImageFilter_hxx

#include "itkHeadTissueClassImageFilter.h"

#include "itkBinaryFillholeImageFilter.h"
#include "itkConnectedComponentImageFilter.h"
#include "itkConstantPadImageFilter.h"
#include "itkImageRegionConstIterator.h"
#include "itkOtsuThresholdImageFilter.h"
#include "itkRelabelComponentImageFilter.h"
#include "itkSignedMaurerDistanceMapImageFilter.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <numeric>

namespace itk
{
template <typename TInputImage, typename TLabelImage, typename TOutputImage>
HeadTissueClassImageFilter<TInputImage, TLabelImage, TOutputImage>::HeadTissueClassImageFilter()
{
  this->AddRequiredInputName("LabelImage", 1);
  this->AddOptionalInputName("BrainMaskImage", 2);
}

template <typename TInputImage, typename TLabelImage, typename TOutputImage>
void
HeadTissueClassImageFilter<TInputImage, TLabelImage, TOutputImage>::GenerateInputRequestedRegion()
{
  // Clustering and distances need the whole head.
  Superclass::GenerateInputRequestedRegion();
  for (auto & input : this->GetInputs())
  {
    if (auto * image = dynamic_cast<ImageBase<ImageDimension> *>(input.GetPointer()))
    {
      image->SetRequestedRegionToLargestPossibleRegion();
    }
  }
}

template <typename TInputImage, typename TLabelImage, typename TOutputImage>
void
HeadTissueClassImageFilter<TInputImage, TLabelImage, TOutputImage>::EnlargeOutputRequestedRegion(DataObject * output)
{
  Superclass::EnlargeOutputRequestedRegion(output);
  output->SetRequestedRegionToLargestPossibleRegion();
}

template <typename TInputImage, typename TLabelImage, typename TOutputImage>
std::vector<double>
HeadTissueClassImageFilter<TInputImage, TLabelImage, TOutputImage>::ClusterIntensities(
  const std::vector<double> & values, const std::vector<double> & weights, unsigned int clusters)
{
  std::vector<double> centres(clusters, 0.0);
  if (values.empty() || clusters == 0)
  {
    return centres;
  }
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&values](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  double       cumulative = 0.0;
  unsigned int next = 0;
  for (const std::size_t index : order)
  {
    cumulative += weights[index];
    while (next < clusters && cumulative >= (2.0 * next + 1.0) / (2.0 * clusters) * total)
    {
      centres[next++] = values[index];
    }
  }
  for (; next < clusters; ++next)
  {
    centres[next] = values[order.back()];
  }
  for (unsigned int iteration = 0; iteration < 100; ++iteration)
  {
    std::vector<double> sum(clusters, 0.0);
    std::vector<double> weight(clusters, 0.0);
    for (std::size_t i = 0; i < values.size(); ++i)
    {
      unsigned int nearest = 0;
      for (unsigned int c = 1; c < clusters; ++c)
      {
        if (std::abs(values[i] - centres[c]) < std::abs(values[i] - centres[nearest]))
        {
          nearest = c;
        }
      }
      sum[nearest] += weights[i] * values[i];
      weight[nearest] += weights[i];
    }
    std::vector<double> updated = centres;
    for (unsigned int c = 0; c < clusters; ++c)
    {
      if (weight[c] > 0.0)
      {
        updated[c] = sum[c] / weight[c];
      }
    }
    std::sort(updated.begin(), updated.end());
    if (updated == centres)
    {
      break;
    }
    centres = updated;
  }
  return centres;
}

template <typename TInputImage, typename TLabelImage, typename TOutputImage>
auto
HeadTissueClassImageFilter<TInputImage, TLabelImage, TOutputImage>::MUSELabelClasses() -> LabelClassMapType
{
  LabelClassMapType table;
  const auto        assign = [&table](std::initializer_list<int> codes, TissueClass tissue) {
    for (const int code : codes)
    {
      table[static_cast<LabelPixelType>(code)] = tissue;
    }
  };
  assign({ 4, 11, 49, 50, 51, 52 }, TissueClass::BrainCSF);
  assign({ 31, 32, 38, 39, 47, 48 }, TissueClass::GreyMatter);
  for (int code = 100; code <= 207; ++code)
  {
    table[static_cast<LabelPixelType>(code)] = TissueClass::GreyMatter;
  }
  assign({ 40, 41 }, TissueClass::WhiteMatter);
  for (int code = 81; code <= 95; ++code)
  {
    table[static_cast<LabelPixelType>(code)] = TissueClass::WhiteMatter;
  }
  return table;
}

template <typename TInputImage, typename TLabelImage, typename TOutputImage>
auto
HeadTissueClassImageFilter<TInputImage, TLabelImage, TOutputImage>::MillimetresFrom(const MaskImageType * mask) ->
  typename DistanceImageType::Pointer
{
  auto distance = SignedMaurerDistanceMapImageFilter<MaskImageType, DistanceImageType>::New();
  distance->SetInput(mask);
  distance->SetBackgroundValue(0);
  distance->SetInsideIsPositive(false);
  distance->SetSquaredDistance(false);
  distance->SetUseImageSpacing(true);
  distance->Update();
  return distance->GetOutput();
}

template <typename TInputImage, typename TLabelImage, typename TOutputImage>
void
HeadTissueClassImageFilter<TInputImage, TLabelImage, TOutputImage>::GenerateData()
{
  using MaskType = MaskImageType;
  const InputImageType * image = this->GetInput();
  const LabelImageType * labels = this->GetLabelImage();
  const LabelImageType * brainMask = this->GetBrainMaskImage();
  const auto             region = image->GetLargestPossibleRegion();
  if (labels->GetLargestPossibleRegion() != region ||
      (brainMask != nullptr && brainMask->GetLargestPossibleRegion() != region))
  {
    itkExceptionMacro(<< "the image (" << region.GetSize() << "), the label map ("
                      << labels->GetLargestPossibleRegion().GetSize() << ")" << (brainMask ? " and the brain mask" : "")
                      << " must share one grid");
  }
  this->AllocateOutputs();
  OutputImageType * output = this->GetOutput();
  output->FillBuffer(static_cast<typename OutputImageType::PixelType>(TissueClass::Background));

  const std::size_t count = region.GetNumberOfPixels();
  const auto *      intensity = image->GetBufferPointer();
  const auto *      label = labels->GetBufferPointer();
  auto *            classes = output->GetBufferPointer();

  auto brain = MaskType::New();
  brain->CopyInformation(image);
  brain->SetRegions(region);
  brain->Allocate();
  unsigned char * isBrain = brain->GetBufferPointer();
  for (std::size_t i = 0; i < count; ++i)
  {
    isBrain[i] = (brainMask ? brainMask->GetBufferPointer()[i] > 0 : label[i] > 0) ? 1 : 0;
  }

  // Brain: one class per label, from the label's median intensity.
  std::map<LabelPixelType, std::vector<float>> labelIntensities;
  for (std::size_t i = 0; i < count; ++i)
  {
    if (isBrain[i] && label[i] > 0)
    {
      labelIntensities[label[i]].push_back(static_cast<float>(intensity[i]));
    }
  }
  if (labelIntensities.empty())
  {
    itkExceptionMacro(<< "the label map has no brain label (no voxel > 0 inside the brain)");
  }
  std::vector<LabelPixelType> labelValues;
  std::vector<double>         medians;
  std::vector<double>         counts;
  for (auto & entry : labelIntensities)
  {
    auto & values = entry.second;
    std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
    labelValues.push_back(entry.first);
    medians.push_back(values[values.size() / 2]);
    counts.push_back(static_cast<double>(values.size()));
  }
  m_LabelClasses.clear();
  // Class centres from the labels of known tissue: the count-weighted mean of
  // their medians.
  std::array<double, 3> knownSum{ { 0.0, 0.0, 0.0 } };
  std::array<double, 3> knownCount{ { 0.0, 0.0, 0.0 } };
  for (std::size_t index = 0; index < labelValues.size(); ++index)
  {
    const auto known = m_KnownLabelClasses.find(labelValues[index]);
    if (known != m_KnownLabelClasses.end())
    {
      const auto c = static_cast<unsigned int>(known->second) - static_cast<unsigned int>(TissueClass::BrainCSF);
      if (c < 3)
      {
        knownSum[c] += counts[index] * medians[index];
        knownCount[c] += counts[index];
      }
    }
  }
  const bool useKnownClasses = knownCount[0] > 0.0 && knownCount[1] > 0.0 && knownCount[2] > 0.0;
  if (useKnownClasses)
  {
    for (unsigned int c = 0; c < 3; ++c)
    {
      m_BrainCentres[c] = knownSum[c] / knownCount[c];
    }
  }
  else
  {
    const auto centres = ClusterIntensities(medians, counts, 3);
    m_BrainCentres = { { centres[0], centres[1], centres[2] } };
  }
  auto nearestBrainClass = [this](double value) {
    unsigned int nearest = 0;
    for (unsigned int c = 1; c < 3; ++c)
    {
      if (std::abs(value - m_BrainCentres[c]) < std::abs(value - m_BrainCentres[nearest]))
      {
        nearest = c;
      }
    }
    return static_cast<TissueClass>(static_cast<unsigned int>(TissueClass::BrainCSF) + nearest);
  };
  for (std::size_t index = 0; index < labelValues.size(); ++index)
  {
    const auto known = useKnownClasses ? m_KnownLabelClasses.find(labelValues[index]) : m_KnownLabelClasses.end();
    m_LabelClasses[labelValues[index]] =
      known != m_KnownLabelClasses.end() ? known->second : nearestBrainClass(medians[index]);
  }
  labelIntensities.clear();
  this->UpdateProgress(0.3f);

  // The head: the largest region above Otsu's threshold, plus the brain,
  // closed and with its holes filled. The dark band of CSF and skull between
  // brain and scalp is often open to the outside somewhere (the cut neck, the
  // sinuses, the ear canals), so filling holes alone would leave it out.
  using OtsuType = OtsuThresholdImageFilter<InputImageType, MaskType>;
  auto otsu = OtsuType::New();
  otsu->SetInput(image);
  otsu->SetInsideValue(0);
  otsu->SetOutsideValue(1);
  using ComponentImageType = Image<unsigned int, ImageDimension>;
  auto components = ConnectedComponentImageFilter<MaskType, ComponentImageType>::New();
  components->SetInput(otsu->GetOutput());
  // Components are relabelled by decreasing size: the head is label 1.
  auto largest = RelabelComponentImageFilter<ComponentImageType, ComponentImageType>::New();
  largest->SetInput(components->GetOutput());
  largest->Update();
  auto head = MaskType::New();
  head->CopyInformation(image);
  head->SetRegions(region);
  head->Allocate();
  {
    const unsigned int * component = largest->GetOutput()->GetBufferPointer();
    unsigned char *      inHead = head->GetBufferPointer();
    for (std::size_t i = 0; i < count; ++i)
    {
      inHead[i] = (component[i] == 1 || isBrain[i]) ? 1 : 0;
    }
  }
  if (m_HeadClosingRadius > 0.0)
  {
    // Closing by a ball through two distance maps: dilate (distance to the
    // head <= r), then erode (distance to the outside of the dilation > r).
    // Zero padding by r lets the erosion work from beyond the field of view,
    // which a head cut by the field of view would otherwise stick to.
    typename MaskType::SizeType padding;
    for (unsigned int d = 0; d < ImageDimension; ++d)
    {
      padding[d] = static_cast<SizeValueType>(std::ceil(m_HeadClosingRadius / image->GetSpacing()[d])) + 1;
    }
    auto pad = ConstantPadImageFilter<MaskType, MaskType>::New();
    pad->SetInput(head);
    pad->SetPadBound(padding);
    pad->SetConstant(0);
    pad->Update();
    const typename MaskType::Pointer padded = pad->GetOutput();
    const std::size_t                paddedCount = padded->GetBufferedRegion().GetNumberOfPixels();
    unsigned char *                  paddedValues = padded->GetBufferPointer();
    const auto                       dilated = MillimetresFrom(padded);
    for (std::size_t i = 0; i < paddedCount; ++i)
    {
      paddedValues[i] = dilated->GetBufferPointer()[i] <= m_HeadClosingRadius ? 0 : 1; // outside the dilation
    }
    const auto  eroded = MillimetresFrom(padded);
    std::size_t i = 0;
    for (ImageRegionConstIterator<DistanceImageType> it(eroded, region); !it.IsAtEnd(); ++it, ++i)
    {
      head->GetBufferPointer()[i] = it.Get() > m_HeadClosingRadius ? 1 : 0;
    }
  }
  auto fill = BinaryFillholeImageFilter<MaskType>::New();
  fill->SetInput(head);
  fill->SetForegroundValue(1);
  fill->FullyConnectedOn();
  fill->Update();
  const unsigned char * inHead = fill->GetOutput()->GetBufferPointer();
  if (this->GetAbortGenerateData())
  {
    ProcessAborted aborted(__FILE__, __LINE__);
    aborted.SetDescription("HeadTissueClassImageFilter aborted");
    throw aborted;
  }
  this->UpdateProgress(0.6f);

  // Outside the brain: dark, intermediate and bright head voxels.
  std::vector<double> nonBrain;
  for (std::size_t i = 0; i < count; ++i)
  {
    if (inHead[i] && !isBrain[i])
    {
      nonBrain.push_back(static_cast<double>(intensity[i]));
    }
  }
  {
    const auto centres = ClusterIntensities(nonBrain, std::vector<double>(nonBrain.size(), 1.0), 3);
    m_NonBrainCentres = { { centres[0], centres[1], centres[2] } };
  }
  nonBrain.clear();
  nonBrain.shrink_to_fit();

  const auto    distance = MillimetresFrom(brain.GetPointer());
  const float * millimetresFromBrain = distance->GetBufferPointer();
  this->UpdateProgress(0.9f);

  for (std::size_t i = 0; i < count; ++i)
  {
    TissueClass  value = TissueClass::Background;
    const double v = static_cast<double>(intensity[i]);
    if (isBrain[i])
    {
      const auto found = label[i] > 0 ? m_LabelClasses.find(label[i]) : m_LabelClasses.end();
      value = found != m_LabelClasses.end() ? found->second : nearestBrainClass(v);
    }
    else if (inHead[i])
    {
      unsigned int nearest = 0;
      for (unsigned int c = 1; c < 3; ++c)
      {
        if (std::abs(v - m_NonBrainCentres[c]) < std::abs(v - m_NonBrainCentres[nearest]))
        {
          nearest = c;
        }
      }
      if (nearest == 0)
      {
        value = millimetresFromBrain[i] <= m_ExtraCerebralCSFDistance ? TissueClass::ExtraCerebralCSF
                                                                      : TissueClass::BoneAndAir;
      }
      else
      {
        value = nearest == 1 ? TissueClass::SoftTissue : TissueClass::Fat;
      }
    }
    classes[i] = static_cast<typename OutputImageType::PixelType>(value);
  }
  this->UpdateProgress(1.0f);
}

template <typename TInputImage, typename TLabelImage, typename TOutputImage>
void
HeadTissueClassImageFilter<TInputImage, TLabelImage, TOutputImage>::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  os << indent << "KnownLabelClasses: " << m_KnownLabelClasses.size() << " labels" << std::endl;
  os << indent << "HeadClosingRadius: " << m_HeadClosingRadius << std::endl;
  os << indent << "ExtraCerebralCSFDistance: " << m_ExtraCerebralCSFDistance << std::endl;
  os << indent << "BrainCentres: " << m_BrainCentres[0] << " " << m_BrainCentres[1] << " " << m_BrainCentres[2]
     << std::endl;
  os << indent << "NonBrainCentres: " << m_NonBrainCentres[0] << " " << m_NonBrainCentres[1] << " "
     << m_NonBrainCentres[2] << std::endl;
  os << indent << "LabelClasses: " << m_LabelClasses.size() << " labels" << std::endl;
}
} // end namespace itk

#endif // itkHeadTissueClassImageFilter_hxx
