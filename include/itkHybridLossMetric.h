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
#ifndef itkHybridLossMetric_h
#define itkHybridLossMetric_h

#include "itkKDBrainExtractionImageMetrics.h"
#include "itkProcessObject.h"
#include "itkSimpleDataObjectDecorator.h"

namespace itk
{
/** \class HybridLossMetric
 * \brief The method's loss and evaluation measures between a prediction and a
 * reference image: MSE, MAE, PSNR, 3D SSIM, soft and binary Dice, the hybrid
 * loss L = w1 MSE + w2 (1 - SSIM) + w3 (1 - Dice), and, for masks,
 * sensitivity, specificity and the 95th-percentile Hausdorff distance (mm).
 *
 * The loss terms are computed by the same LibTorch functions that the
 * trainer differentiates, so the reported loss is the training loss.
 * Both images must lie on the same grid. Results are decorated outputs, as
 * in StatisticsImageFilter:
 * \code
 *   metric->SetPredictionImage(prediction);
 *   metric->SetTargetImage(reference);
 *   metric->Update();
 *   double dice = metric->GetDice();
 * \endcode
 *
 * \ingroup KDBrainExtraction
 */
template <typename TPredictionImage, typename TTargetImage = TPredictionImage>
class ITK_TEMPLATE_EXPORT HybridLossMetric : public ProcessObject
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(HybridLossMetric);

  using Self = HybridLossMetric;
  using Superclass = ProcessObject;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  itkNewMacro(Self);
  itkTypeMacro(HybridLossMetric, ProcessObject);

  static_assert(TPredictionImage::ImageDimension == 3 && TTargetImage::ImageDimension == 3,
                "HybridLossMetric compares 3D images");

  using PredictionImageType = TPredictionImage;
  using TargetImageType = TTargetImage;
  using RealObjectType = SimpleDataObjectDecorator<double>;

  itkSetInputMacro(PredictionImage, PredictionImageType);
  itkGetInputMacro(PredictionImage, PredictionImageType);
  itkSetInputMacro(TargetImage, TargetImageType);
  itkGetInputMacro(TargetImage, TargetImageType);

  /** Weights of the three terms of the hybrid loss (1 each by default). */
  itkSetMacro(MeanSquaredErrorWeight, double);
  itkGetConstMacro(MeanSquaredErrorWeight, double);
  itkSetMacro(StructuralDissimilarityWeight, double);
  itkGetConstMacro(StructuralDissimilarityWeight, double);
  itkSetMacro(DiceLossWeight, double);
  itkGetConstMacro(DiceLossWeight, double);

  /** Gaussian window of SSIM, in voxels (1.5). */
  itkSetMacro(StructuralSimilaritySigma, double);
  itkGetConstMacro(StructuralSimilaritySigma, double);

  /** Data range L of SSIM and PSNR; 0 (default) takes the target's range. */
  itkSetMacro(DataRange, double);
  itkGetConstMacro(DataRange, double);

  /** Threshold that makes masks of both images for the binary measures (0.5). */
  itkSetMacro(BinaryThreshold, double);
  itkGetConstMacro(BinaryThreshold, double);

  itkGetDecoratedOutputMacro(Loss, double);
  itkGetDecoratedOutputMacro(MeanSquaredError, double);
  itkGetDecoratedOutputMacro(MeanAbsoluteError, double);
  itkGetDecoratedOutputMacro(PeakSignalToNoiseRatio, double);
  itkGetDecoratedOutputMacro(StructuralSimilarity, double);
  itkGetDecoratedOutputMacro(SoftDice, double);
  itkGetDecoratedOutputMacro(Dice, double);
  itkGetDecoratedOutputMacro(Sensitivity, double);
  itkGetDecoratedOutputMacro(Specificity, double);
  itkGetDecoratedOutputMacro(HausdorffDistance95, double);

  using DataObjectIdentifierType = ProcessObject::DataObjectIdentifierType;
  using Superclass::MakeOutput;
  DataObject::Pointer
  MakeOutput(const DataObjectIdentifierType & name) override;

protected:
  HybridLossMetric();
  ~HybridLossMetric() override = default;

  void
  PrintSelf(std::ostream & os, Indent indent) const override;

  void
  GenerateData() override;

private:
  double m_MeanSquaredErrorWeight{ 1.0 };
  double m_StructuralDissimilarityWeight{ 1.0 };
  double m_DiceLossWeight{ 1.0 };
  double m_StructuralSimilaritySigma{ 1.5 };
  double m_DataRange{ 0.0 };
  double m_BinaryThreshold{ 0.5 };
};
} // end namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkHybridLossMetric.hxx"
#endif

#endif // itkHybridLossMetric_h
