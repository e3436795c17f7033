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
#ifndef itkKDBrainExtractionTensorBridge_h
#define itkKDBrainExtractionTensorBridge_h

// Private to the module library: includes LibTorch.
#include <torch/torch.h>

#include <array>
#include <cstddef>

namespace itk
{
/** The one convention between ITK buffers and tensors. An ITK buffer is
 * x-fastest, so a volume of size (x, y, z) is the tensor [1, 1, z, y, x].
 * The view shares (and never writes) the caller's memory. */
inline torch::Tensor
KDBrainExtractionBufferToTensor(const float * buffer, const std::array<std::size_t, 3> & size)
{
  return torch::from_blob(
    const_cast<float *>(buffer),
    { 1, 1, static_cast<int64_t>(size[2]), static_cast<int64_t>(size[1]), static_cast<int64_t>(size[0]) },
    torch::kFloat32);
}

/** Copies a [1, 1, z, y, x] tensor (any device) into an x-fastest buffer. */
inline void
KDBrainExtractionTensorToBuffer(const torch::Tensor & tensor, float * buffer)
{
  const torch::Tensor values = tensor.to(torch::kCPU, torch::kFloat32).contiguous();
  std::memcpy(buffer, values.data_ptr<float>(), sizeof(float) * static_cast<std::size_t>(values.numel()));
}
} // end namespace itk

#endif // itkKDBrainExtractionTensorBridge_h
