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
#ifndef itkKDBrainExtractionHybridLoss_h
#define itkKDBrainExtractionHybridLoss_h

// Private to the module library: includes LibTorch. The one implementation of
// the loss formulas; the trainer differentiates through it and
// itk::HybridLossMetric evaluates it on images.
#include "KDBrainExtractionExport.h"

#include <torch/torch.h>

namespace itk
{
struct HybridLossWeights
{
  double MeanSquaredError{ 1.0 };
  double StructuralDissimilarity{ 1.0 };
  double DiceLoss{ 1.0 };
};

struct HybridLossTerms
{
  torch::Tensor MeanSquaredError;
  torch::Tensor StructuralSimilarity;
  torch::Tensor Dice;
  torch::Tensor Loss;
};

/** Tensors are [N, C, z, y, x]; reductions are over everything (means). */
KDBrainExtraction_EXPORT torch::Tensor
KDBrainExtractionMeanSquaredError(const torch::Tensor & prediction, const torch::Tensor & target);

/** Mean 3D SSIM (Wang et al. 2004) with a separable Gaussian window of
 * \a sigma voxels (truncated at 3.5 sigma, shortened on small axes), computed
 * over the valid region, with C1 = (0.01 L)^2, C2 = (0.03 L)^2 for data range L. */
KDBrainExtraction_EXPORT torch::Tensor
KDBrainExtractionStructuralSimilarity(const torch::Tensor & prediction, const torch::Tensor & target,
                                      double sigma = 1.5, double dataRange = 1.0);

/** Soft Dice 2 sum(p t) / (sum p + sum t); with binary inputs the usual Dice.
 * Two empty inputs agree perfectly (Dice 1). */
KDBrainExtraction_EXPORT torch::Tensor
                         KDBrainExtractionSoftDice(const torch::Tensor & prediction, const torch::Tensor & target);

/** L = w1 MSE + w2 (1 - SSIM) + w3 (1 - Dice). */
KDBrainExtraction_EXPORT HybridLossTerms
KDBrainExtractionHybridLoss(const torch::Tensor & prediction, const torch::Tensor & target,
                            const HybridLossWeights & weights = HybridLossWeights(), double dataRange = 1.0,
                            double ssimSigma = 1.5);
} // end namespace itk

#endif // itkKDBrainExtractionHybridLoss_h
