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
#ifndef itkUNetPlusPlus_h
#define itkUNetPlusPlus_h

// Private to the module library: includes LibTorch.
#include "KDBrainExtractionExport.h"

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace itk
{
struct UNetPlusPlusOptions
{
  int         InputChannels{ 1 };
  int         OutputChannels{ 1 };
  int         Depth{ 3 };
  int         BaseWidth{ 8 };
  std::string Normalization{ "batch" };
  double      Dropout{ 0.0 };
  bool        DeepSupervision{ false };
};

/** 3D UNet++ (Zhou et al., 2018): an encoder column X(i,0) and nested dense
 * skip pathways X(i,j) = Block([X(i,0..j-1), Up(X(i+1,j-1))]). Each node is two
 * 3x3x3 convolutions with normalisation and LeakyReLU. The output is a 1x1x1
 * head on X(0,Depth), or with deep supervision the mean of heads on X(0,1..Depth).
 * Any input size works: upsampled maps are interpolated to the skip's size. */
class KDBrainExtraction_EXPORT UNetPlusPlusImpl : public torch::nn::Module
{
public:
  explicit UNetPlusPlusImpl(const UNetPlusPlusOptions & options);

  /** The network output (logits of the heads, averaged with deep supervision).
   * \a stageDone, if given, is called after each node with the fraction done;
   * if it returns false the forward pass stops and an empty tensor is returned. */
  torch::Tensor
  forward(const torch::Tensor & input, const std::function<bool(double)> & stageDone = nullptr);

  /** One output per head (one element without deep supervision), for training. */
  std::vector<torch::Tensor>
  ForwardHeads(const torch::Tensor & input);

  const UNetPlusPlusOptions &
  GetOptions() const
  {
    return m_Options;
  }
  int
  GetWidth(int level) const
  {
    return m_Options.BaseWidth << level;
  }

private:
  /** One node's block; its input is the channel concatenation of \a parts. */
  torch::Tensor
  ForwardBlock(torch::nn::Sequential & block, const std::vector<torch::Tensor> & parts);

  std::vector<torch::Tensor>
  ForwardNodes(const torch::Tensor & input, const std::function<bool(double)> & stageDone, bool & aborted);

  UNetPlusPlusOptions m_Options;
  // m_Nodes[i][j] is X(i,j); i + j <= Depth.
  std::vector<std::vector<torch::nn::Sequential>> m_Nodes;
  std::vector<torch::nn::Conv3d>                  m_Heads;
};
TORCH_MODULE(UNetPlusPlus);
} // end namespace itk

#endif // itkUNetPlusPlus_h
