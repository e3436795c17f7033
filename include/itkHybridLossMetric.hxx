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
#ifndef itkHybridLossMetric_hxx
#define itkHybridLossMetric_hxx

#include "itkHybridLossMetric.h"

#include "itkCastImageFilter.h"

#include <type_traits>

namespace itk
{
namespace HybridLossMetricDetail
{
constexpr const char * OutputNames[] = {
  "Loss", "MeanSquaredError", "MeanAbsoluteError", "PeakSignalToNoiseRatio", "StructuralSimilarity", "SoftDice",
  "Dice", "Sensitivity",      "Specificity",       "HausdorffDistance95"
};

/** A float copy (or the image itself when it is float already). */
template <typename TImage>
KDBrainExtractionImageMetrics::ImageType::ConstPointer
AsFloatImage(const TImage * image)
{
  if constexpr (std::is_same<TImage, KDBrainExtractionImageMetrics::ImageType>::value)
  {
    return image;
  }
  else
  {
    auto graft = TImage::New();
    graft->Graft(image);
    auto cast = CastImageFilter<TImage, KDBrainExtractionImageMetrics::ImageType>::New();
    cast->SetInput(graft);
    cast->Update();
    return cast->GetOutput();
  }
}
} // namespace HybridLossMetricDetail

template <typename TPredictionImage, typename TTargetImage>
HybridLossMetric<TPredictionImage, TTargetImage>::HybridLossMetric()
{
  this->AddRequiredInputName("PredictionImage");
  this->AddRequiredInputName("TargetImage");
  this->SetPrimaryOutputName("Loss");
  for (const char * name : HybridLossMetricDetail::OutputNames)
  {
    this->ProcessObject::SetOutput(name, this->MakeOutput(name));
  }
}

template <typename TPredictionImage, typename TTargetImage>
DataObject::Pointer
HybridLossMetric<TPredictionImage, TTargetImage>::MakeOutput(const DataObjectIdentifierType & name)
{
  for (const char * outputName : HybridLossMetricDetail::OutputNames)
  {
    if (name == outputName)
    {
      return RealObjectType::New().GetPointer();
    }
  }
  return Superclass::MakeOutput(name);
}

template <typename TPredictionImage, typename TTargetImage>
void
HybridLossMetric<TPredictionImage, TTargetImage>::GenerateData()
{
  KDBrainExtractionImageMetrics::Options options;
  options.MeanSquaredErrorWeight = m_MeanSquaredErrorWeight;
  options.StructuralDissimilarityWeight = m_StructuralDissimilarityWeight;
  options.DiceLossWeight = m_DiceLossWeight;
  options.StructuralSimilaritySigma = m_StructuralSimilaritySigma;
  options.DataRange = m_DataRange;
  options.BinaryThreshold = m_BinaryThreshold;
  const auto prediction = HybridLossMetricDetail::AsFloatImage(this->GetPredictionImage());
  const auto target = HybridLossMetricDetail::AsFloatImage(this->GetTargetImage());
  const auto values = KDBrainExtractionImageMetrics::Compute(prediction, target, options);

  const double results[] = { values.Loss,
                             values.MeanSquaredError,
                             values.MeanAbsoluteError,
                             values.PeakSignalToNoiseRatio,
                             values.StructuralSimilarity,
                             values.SoftDice,
                             values.Dice,
                             values.Sensitivity,
                             values.Specificity,
                             values.HausdorffDistance95 };
  static_assert(std::size(results) == std::size(HybridLossMetricDetail::OutputNames), "one value per output");
  for (std::size_t i = 0; i < std::size(results); ++i)
  {
    static_cast<RealObjectType *>(this->ProcessObject::GetOutput(HybridLossMetricDetail::OutputNames[i]))
      ->Set(results[i]);
  }
}

template <typename TPredictionImage, typename TTargetImage>
void
HybridLossMetric<TPredictionImage, TTargetImage>::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  os << indent << "MeanSquaredErrorWeight: " << m_MeanSquaredErrorWeight << std::endl;
  os << indent << "StructuralDissimilarityWeight: " << m_StructuralDissimilarityWeight << std::endl;
  os << indent << "DiceLossWeight: " << m_DiceLossWeight << std::endl;
  os << indent << "StructuralSimilaritySigma: " << m_StructuralSimilaritySigma << std::endl;
  os << indent << "DataRange: " << m_DataRange << std::endl;
  os << indent << "BinaryThreshold: " << m_BinaryThreshold << std::endl;
}
} // end namespace itk

#endif // itkHybridLossMetric_hxx
