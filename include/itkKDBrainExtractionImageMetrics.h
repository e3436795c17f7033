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
#ifndef itkKDBrainExtractionImageMetrics_h
#define itkKDBrainExtractionImageMetrics_h

#include "KDBrainExtractionExport.h"
#include "itkImage.h"

namespace itk
{
/** \class KDBrainExtractionImageMetrics
 * \brief The evaluation and loss measures of the method, computed by the same
 * LibTorch functions that the trainer differentiates (one implementation of
 * each formula), plus the mask measures that have no gradient.
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtraction_EXPORT KDBrainExtractionImageMetrics
{
public:
  using ImageType = Image<float, 3>;

  struct Options
  {
    double MeanSquaredErrorWeight{ 1.0 };
    double StructuralDissimilarityWeight{ 1.0 };
    double DiceLossWeight{ 1.0 };
    /** SSIM's Gaussian window, in voxels. */
    double StructuralSimilaritySigma{ 1.5 };
    /** Data range L of SSIM (C1 = (0.01 L)^2, C2 = (0.03 L)^2) and PSNR; 0 takes
     * the target's range (max - min). */
    double DataRange{ 0.0 };
    /** Voxels at or above this are inside, for the binary measures. */
    double BinaryThreshold{ 0.5 };
  };

  struct Values
  {
    double MeanSquaredError{ 0.0 };
    double MeanAbsoluteError{ 0.0 };
    /** 10 log10(L^2 / MSE), in dB; infinite for identical images. */
    double PeakSignalToNoiseRatio{ 0.0 };
    double StructuralSimilarity{ 0.0 };
    /** 2 sum(p t) / (sum p + sum t) on the values themselves. */
    double SoftDice{ 0.0 };
    /** MSE weight * MSE + SSIM weight * (1 - SSIM) + Dice weight * (1 - soft Dice). */
    double Loss{ 0.0 };
    /** Binary measures after thresholding both images. */
    double Dice{ 0.0 };
    double Sensitivity{ 0.0 };
    double Specificity{ 0.0 };
    /** The larger of the two directed 95th-percentile surface distances, in
     * mm; infinite when one mask is empty and the other is not. */
    double HausdorffDistance95{ 0.0 };
  };

  /** Both images must share their grid; throws ExceptionObject otherwise. */
  static Values
  Compute(const ImageType * prediction, const ImageType * target, const Options & options);
};
} // end namespace itk

#endif // itkKDBrainExtractionImageMetrics_h
