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
#include "itkKDBrainExtractionHybridLoss.h"

#include <cmath>

namespace itk
{
torch::Tensor
KDBrainExtractionMeanSquaredError(const torch::Tensor & prediction, const torch::Tensor & target)
{
  return (prediction - target).pow(2).mean();
}

namespace
{
/** Separable Gaussian filtering of [B, 1, z, y, x] over the valid region. */
torch::Tensor
GaussianFilterValid(const torch::Tensor & volume, double sigma)
{
  namespace F = torch::nn::functional;
  torch::Tensor filtered = volume;
  for (int axis = 2; axis < 5; ++axis)
  {
    const int64_t radius = std::min<int64_t>(static_cast<int64_t>(std::ceil(3.5 * sigma)), (volume.size(axis) - 1) / 2);
    const torch::Tensor offsets =
      torch::arange(-radius, radius + 1, torch::TensorOptions().dtype(volume.scalar_type()).device(volume.device()));
    torch::Tensor kernel = torch::exp(-0.5 * (offsets / sigma).pow(2));
    kernel = kernel / kernel.sum();
    std::vector<int64_t> shape{ 1, 1, 1, 1, 1 };
    shape[axis] = 2 * radius + 1;
    filtered = F::conv3d(filtered, kernel.view(shape));
  }
  return filtered;
}
} // namespace

torch::Tensor
KDBrainExtractionStructuralSimilarity(const torch::Tensor & prediction, const torch::Tensor & target, double sigma,
                                      double dataRange)
{
  const auto sizes = prediction.sizes();
  // Every channel is an independent volume.
  const torch::Tensor x = prediction.reshape({ -1, 1, sizes[2], sizes[3], sizes[4] });
  const torch::Tensor y = target.reshape({ -1, 1, sizes[2], sizes[3], sizes[4] });
  const double        c1 = std::pow(0.01 * dataRange, 2);
  const double        c2 = std::pow(0.03 * dataRange, 2);
  const torch::Tensor muX = GaussianFilterValid(x, sigma);
  const torch::Tensor muY = GaussianFilterValid(y, sigma);
  const torch::Tensor varianceX = GaussianFilterValid(x * x, sigma) - muX * muX;
  const torch::Tensor varianceY = GaussianFilterValid(y * y, sigma) - muY * muY;
  const torch::Tensor covariance = GaussianFilterValid(x * y, sigma) - muX * muY;
  const torch::Tensor ssim =
    ((2 * muX * muY + c1) * (2 * covariance + c2)) / ((muX * muX + muY * muY + c1) * (varianceX + varianceY + c2));
  return ssim.mean();
}

torch::Tensor
KDBrainExtractionSoftDice(const torch::Tensor & prediction, const torch::Tensor & target)
{
  const torch::Tensor intersection = (prediction * target).sum();
  const torch::Tensor total = prediction.sum() + target.sum();
  // The small constant only matters when both are empty: then Dice is 1.
  constexpr double epsilon = 1e-6;
  return (2.0 * intersection + epsilon) / (total + epsilon);
}

HybridLossTerms
KDBrainExtractionHybridLoss(const torch::Tensor & prediction, const torch::Tensor & target,
                            const HybridLossWeights & weights, double dataRange, double ssimSigma)
{
  HybridLossTerms terms;
  terms.MeanSquaredError = KDBrainExtractionMeanSquaredError(prediction, target);
  terms.StructuralSimilarity = KDBrainExtractionStructuralSimilarity(prediction, target, ssimSigma, dataRange);
  terms.Dice = KDBrainExtractionSoftDice(prediction, target);
  terms.Loss = weights.MeanSquaredError * terms.MeanSquaredError +
               weights.StructuralDissimilarity * (1.0 - terms.StructuralSimilarity) +
               weights.DiceLoss * (1.0 - terms.Dice);
  return terms;
}
} // end namespace itk
