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
#ifndef itkKDBrainExtractionTorchModelImplementation_h
#define itkKDBrainExtractionTorchModelImplementation_h

// Private to the module library and its trainer: includes LibTorch.
#include "itkKDBrainExtractionTorchModel.h"
#include "itkBoundaryRefinementNetwork.h"
#include "itkUNetPlusPlus.h"

#include <mutex>

namespace itk
{
struct KDBrainExtraction_EXPORT KDBrainExtractionTorchModel::Implementation
{
  RoleEnum                           Role{ RoleEnum::Student };
  Architecture                       NetworkArchitecture;
  Contract                           PreprocessingContract;
  std::map<std::string, std::string> Metadata;
  UNetPlusPlus                       Network{ nullptr }; // teacher, student
  BoundaryRefinementNetwork          Refiner{ nullptr }; // refiner
  torch::Device                      Device{ torch::kCPU };
  std::string                        FileName;
  std::string                        Checksum;
  // Predict() is const and may be called from several filters at once.
  std::mutex PredictMutex;

  UNetPlusPlusOptions
  MakeNetworkOptions() const;
  BoundaryRefinementNetworkOptions
  MakeRefinerOptions() const;

  /** Builds the network of the role and architecture (random weights). */
  void
  BuildNetwork();
  /** The network of the role, as a module (save, load, devices, averaging);
   * nullptr before Load or Initialize. */
  torch::nn::Module *
  GetNetworkModule() const;
};

/** Whether networks of architectures \a a and \a b hold the same weight
 * tensors (names and shapes), so that weights can be copied or averaged
 * between them: depth, width, normalisation and deep supervision (dropout
 * has no weights). */
KDBrainExtraction_EXPORT bool
KDBrainExtractionHaveSameWeightLayout(const KDBrainExtractionTorchModel::Architecture & a,
                                      const KDBrainExtractionTorchModel::Architecture & b);

/** Parses a device name ("", "auto", "cpu", "cuda", "cuda:N"); throws
 * ExceptionObject if CUDA is asked for and not usable. */
KDBrainExtraction_EXPORT torch::Device
                         KDBrainExtractionParseDevice(const std::string & device);
} // end namespace itk

#endif // itkKDBrainExtractionTorchModelImplementation_h
