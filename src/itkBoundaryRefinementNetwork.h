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
#ifndef itkBoundaryRefinementNetwork_h
#define itkBoundaryRefinementNetwork_h

// Private to the module library: includes LibTorch.
#include "KDBrainExtractionExport.h"

#include <torch/torch.h>

namespace itk
{
struct BoundaryRefinementNetworkOptions
{
  int InputFeatures{ 1 };
  int HiddenLayers{ 2 };
  int HiddenWidth{ 48 };
};

/** The fine stage's network: a multilayer perceptron from a boundary point's
 * features (KDBrainExtractionBoundaryRefinement) to the logit of its brain
 * probability, as PointRend's point head. Fully connected layers of
 * HiddenWidth units with LeakyReLU, then one output; no normalisation, so
 * that a point's result does not depend on the others in its batch. */
class KDBrainExtraction_EXPORT BoundaryRefinementNetworkImpl : public torch::nn::Module
{
public:
  explicit BoundaryRefinementNetworkImpl(const BoundaryRefinementNetworkOptions & options)
    : m_Options(options)
  {
    int width = options.InputFeatures;
    for (int layer = 0; layer < options.HiddenLayers; ++layer)
    {
      m_Layers->push_back(torch::nn::Linear(width, options.HiddenWidth));
      m_Layers->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.01)));
      width = options.HiddenWidth;
    }
    m_Layers->push_back(torch::nn::Linear(width, 1));
    register_module("layers", m_Layers);
  }

  /** [N, InputFeatures] features to [N] logits. */
  torch::Tensor
  forward(const torch::Tensor & features)
  {
    return m_Layers->forward(features).squeeze(1);
  }

  /** forward() for inference. On the CPU its fully connected layers run
   * through oneDNN (mkldnn_linear): LibTorch's own CPU matrix product, where
   * no optimised BLAS is linked (Debian's LibTorch), ran at about 5 GFLOPS on
   * two cores, oneDNN's at over 100, which makes the fine stage ~0.1 s
   * instead of ~3 s on a 1 mm head. Elsewhere, the same as forward(). */
  torch::Tensor
  Infer(const torch::Tensor & features)
  {
    if (!features.device().is_cpu() || !at::hasMKLDNN() || features.scalar_type() != torch::kFloat32)
    {
      return forward(features);
    }
    torch::Tensor hidden = features.contiguous();
    const auto    numberOfLayers = m_Layers->size();
    for (std::size_t index = 0; index < numberOfLayers; ++index)
    {
      if (auto * linear = m_Layers[index]->as<torch::nn::Linear>())
      {
        hidden = at::mkldnn_linear(hidden.to_mkldnn(), linear->weight.to_mkldnn(), linear->bias.to_mkldnn()).to_dense();
      }
      else
      {
        hidden = m_Layers[index]->as<torch::nn::LeakyReLU>()->forward(hidden);
      }
    }
    return hidden.squeeze(1);
  }

  const BoundaryRefinementNetworkOptions &
  GetOptions() const
  {
    return m_Options;
  }

private:
  BoundaryRefinementNetworkOptions m_Options;
  torch::nn::Sequential            m_Layers;
};
TORCH_MODULE(BoundaryRefinementNetwork);
} // end namespace itk

#endif // itkBoundaryRefinementNetwork_h
