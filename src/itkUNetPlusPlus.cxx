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
#include "itkUNetPlusPlus.h"

#include <ATen/Config.h>

#include <stdexcept>

namespace itk
{
namespace
{
torch::nn::Sequential
MakeConvolutionBlock(int inputChannels, int outputChannels, const UNetPlusPlusOptions & options)
{
  torch::nn::Sequential block;
  const bool            normalized = options.Normalization != "none";
  for (int layer = 0; layer < 2; ++layer)
  {
    const int in = layer == 0 ? inputChannels : outputChannels;
    // A bias before a normalisation layer is redundant.
    block->push_back(torch::nn::Conv3d(torch::nn::Conv3dOptions(in, outputChannels, 3).padding(1).bias(!normalized)));
    if (options.Normalization == "batch")
    {
      block->push_back(torch::nn::BatchNorm3d(outputChannels));
    }
    else if (options.Normalization == "instance")
    {
      block->push_back(torch::nn::InstanceNorm3d(torch::nn::InstanceNorm3dOptions(outputChannels).affine(true)));
    }
    block->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.01).inplace(true)));
  }
  if (options.Dropout > 0.0)
  {
    block->push_back(torch::nn::Dropout3d(options.Dropout));
  }
  return block;
}

/** LibTorch sends batch-1 convolutions with few channels or small maps to its
 * slow reference kernels (im2col) rather than oneDNN: 40x slower for the first
 * layer of this network. Inference therefore calls oneDNN directly. */
bool
UseOneDNN(const torch::Tensor & input)
{
  return AT_MKLDNN_ENABLED() && at::globalContext().userEnabledMkldnn() && input.device().is_cpu() &&
         input.scalar_type() == torch::kFloat32;
}

torch::Tensor
Convolve(const torch::Tensor & x, const torch::Tensor & weight, const torch::Tensor & bias)
{
  // Every convolution here is "same"-padded with an odd cubic kernel.
  const std::vector<int64_t> padding(3, weight.size(2) / 2);
  if (UseOneDNN(x))
  {
    return torch::mkldnn_convolution(x.contiguous(), weight.contiguous(), bias, padding, { 1, 1, 1 }, { 1, 1, 1 }, 1);
  }
  return torch::conv3d(x, weight, bias, 1, padding);
}

/** Inference through one convolution block whose input is the channel
 * concatenation of \a parts. Each convolution has the batch normalisation
 * that follows folded into its weights (one pass over the activations instead
 * of two), then an in-place LeakyReLU. The first convolution is the sum of
 * one convolution per part with its slice of the weights: the concatenation
 * of UNet++'s dense skip pathways (up to 5x the output's size at full
 * resolution) and oneDNN's copy of it are never made. */
torch::Tensor
ForwardBlockForInference(torch::nn::Sequential & block, const std::vector<torch::Tensor> & parts)
{
  const auto &  modules = block->modules(false);
  torch::Tensor x;
  for (std::size_t index = 0; index < modules.size(); ++index)
  {
    const auto * convolution = modules[index]->as<torch::nn::Conv3d>();
    if (!convolution)
    {
      // Batch normalisation is folded below and dropout is the identity here.
      if (const auto * activation = modules[index]->as<torch::nn::LeakyReLU>())
      {
        x = torch::leaky_relu_(x, activation->options.negative_slope());
      }
      else if (auto * instanceNorm = modules[index]->as<torch::nn::InstanceNorm3d>())
      {
        x = instanceNorm->forward(x);
      }
      continue;
    }
    torch::Tensor weight = convolution->weight;
    torch::Tensor bias =
      convolution->bias.defined() ? convolution->bias : torch::zeros({ weight.size(0) }, weight.options());
    if (index + 1 < modules.size())
    {
      if (const auto * batchNorm = modules[index + 1]->as<torch::nn::BatchNorm3d>())
      {
        const torch::Tensor scale = batchNorm->weight / torch::sqrt(batchNorm->running_var + batchNorm->options.eps());
        weight = weight * scale.view({ -1, 1, 1, 1, 1 });
        bias = (bias - batchNorm->running_mean) * scale + batchNorm->bias;
      }
    }
    if (x.defined())
    {
      x = Convolve(x, weight, bias);
      continue;
    }
    int64_t firstChannel = 0;
    for (const auto & part : parts)
    {
      const torch::Tensor partWeight = weight.narrow(1, firstChannel, part.size(1));
      if (firstChannel == 0)
      {
        x = Convolve(part, partWeight, bias);
      }
      else
      {
        x.add_(Convolve(part, partWeight, torch::zeros_like(bias)));
      }
      firstChannel += part.size(1);
    }
  }
  return x;
}
} // namespace

UNetPlusPlusImpl::UNetPlusPlusImpl(const UNetPlusPlusOptions & options)
  : m_Options(options)
{
  if (options.Depth < 1 || options.Depth > 6)
  {
    throw std::invalid_argument("UNet++ depth must be between 1 and 6, got " + std::to_string(options.Depth));
  }
  if (options.BaseWidth < 1 || options.InputChannels < 1 || options.OutputChannels < 1)
  {
    throw std::invalid_argument("UNet++ widths and channel counts must be positive");
  }
  if (options.Normalization != "batch" && options.Normalization != "instance" && options.Normalization != "none")
  {
    throw std::invalid_argument("UNet++ normalization must be batch, instance or none, got '" + options.Normalization +
                                "'");
  }
  const int depth = options.Depth;
  m_Nodes.resize(depth + 1);
  for (int i = 0; i <= depth; ++i)
  {
    for (int j = 0; i + j <= depth; ++j)
    {
      const int inputChannels =
        j == 0 ? (i == 0 ? options.InputChannels : GetWidth(i - 1)) : j * GetWidth(i) + GetWidth(i + 1);
      m_Nodes[i].push_back(register_module("node_" + std::to_string(i) + "_" + std::to_string(j),
                                           MakeConvolutionBlock(inputChannels, GetWidth(i), options)));
    }
  }
  const int firstHead = options.DeepSupervision ? 1 : depth;
  for (int j = firstHead; j <= depth; ++j)
  {
    m_Heads.push_back(
      register_module("head_" + std::to_string(j),
                      torch::nn::Conv3d(torch::nn::Conv3dOptions(GetWidth(0), options.OutputChannels, 1))));
  }
}

std::vector<torch::Tensor>
UNetPlusPlusImpl::ForwardNodes(const torch::Tensor & input, const std::function<bool(double)> & stageDone,
                               bool & aborted)
{
  namespace F = torch::nn::functional;
  const int    depth = m_Options.Depth;
  const double numberOfNodes = (depth + 1) * (depth + 2) / 2.0;
  int          nodesDone = 0;
  aborted = false;
  auto report = [&]() {
    ++nodesDone;
    if (stageDone && !stageDone(nodesDone / numberOfNodes))
    {
      aborted = true;
    }
    return !aborted;
  };

  // x[i][j] holds X(i,j). The nodes are computed by anti-diagonals: X(j,0)
  // first, then every node X(i, j-i) that it completes, as in the paper.
  std::vector<std::vector<torch::Tensor>> x(depth + 1);
  for (int column = 0; column <= depth; ++column)
  {
    const torch::Tensor encoderInput =
      column == 0 ? input : F::max_pool3d(x[column - 1][0], F::MaxPool3dFuncOptions(2));
    x[column].push_back(ForwardBlock(m_Nodes[column][0], { encoderInput }));
    if (!report())
    {
      return {};
    }
    for (int i = column - 1; i >= 0; --i)
    {
      const int           j = column - i;
      const auto &        skip = x[i][0];
      const torch::Tensor upsampled =
        F::interpolate(x[i + 1][j - 1],
                       F::InterpolateFuncOptions()
                         .size(std::vector<int64_t>(skip.sizes().begin() + 2, skip.sizes().end()))
                         .mode(torch::kTrilinear)
                         .align_corners(false));
      std::vector<torch::Tensor> inputs(x[i].begin(), x[i].end());
      inputs.push_back(upsampled);
      x[i].push_back(ForwardBlock(m_Nodes[i][j], inputs));
      if (column == depth)
      {
        // X(i, j) was the last node to read row i + 1: free its maps now (in
        // inference; under autograd the graph keeps them).
        x[i + 1].clear();
      }
      if (!report())
      {
        return {};
      }
    }
  }
  std::vector<torch::Tensor> outputs;
  const int                  firstHead = m_Options.DeepSupervision ? 1 : depth;
  for (int j = firstHead; j <= depth; ++j)
  {
    outputs.push_back(m_Heads[j - firstHead]->forward(x[0][j]));
  }
  return outputs;
}

torch::Tensor
UNetPlusPlusImpl::ForwardBlock(torch::nn::Sequential & block, const std::vector<torch::Tensor> & parts)
{
  // The folded path is exact only with running statistics and without autograd.
  if (!is_training() && !torch::GradMode::is_enabled())
  {
    return ForwardBlockForInference(block, parts);
  }
  return block->forward(parts.size() == 1 ? parts.front() : torch::cat(parts, 1));
}

std::vector<torch::Tensor>
UNetPlusPlusImpl::ForwardHeads(const torch::Tensor & input)
{
  bool aborted = false;
  return ForwardNodes(input, nullptr, aborted);
}

torch::Tensor
UNetPlusPlusImpl::forward(const torch::Tensor & input, const std::function<bool(double)> & stageDone)
{
  bool       aborted = false;
  const auto outputs = ForwardNodes(input, stageDone, aborted);
  if (aborted)
  {
    return {};
  }
  if (outputs.size() == 1)
  {
    return outputs.front();
  }
  return torch::stack(outputs, 0).mean(0);
}
} // end namespace itk
