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
#include "itkKDBrainExtractionTorchModelImplementation.h"
#include "itkKDBrainExtractionInputFile.h"
#include "itkKDBrainExtractionOutputFile.h"
#include "itkKDBrainExtractionWeightArchive.h"

#include "itkKDBrainExtractionBoundaryRefinement.h"
#include "itkKDBrainExtractionTensorBridge.h"

#include "itksys/Encoding.hxx"
#include "itksys/SystemTools.hxx"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#if defined(__GLIBC__)
#  include <malloc.h>
#  include <sys/mman.h>
#endif

#if defined(_WIN32)
#  include <windows.h>
#else
#  include <dlfcn.h>
#endif

namespace itk
{
namespace
{
constexpr char ModelMagic[8] = { 'K', 'D', 'B', 'E', 'T', 'M', 'D', 'L' };
// Far above any real model: a corrupt length field must not allocate gigabytes.
constexpr uint64_t MaximumSectionLength = uint64_t{ 1 } << 31;

uint64_t
Fnv1a64(const std::string & first, const std::string & second)
{
  uint64_t hash = 14695981039346656037ull;
  for (const std::string * text : { &first, &second })
  {
    for (const char c : *text)
    {
      hash ^= static_cast<unsigned char>(c);
      hash *= 1099511628211ull;
    }
  }
  return hash;
}

std::string
ToHex(uint64_t value)
{
  std::ostringstream text;
  text << std::hex << std::setw(16) << std::setfill('0') << value;
  return text.str();
}

template <typename T>
void
WriteBinary(std::ostream & stream, T value)
{
  // Little-endian on every platform LibTorch supports.
  stream.write(reinterpret_cast<const char *>(&value), sizeof(T));
}

template <typename T>
bool
ReadBinary(const std::string & bytes, std::size_t & position, T & value)
{
  if (position + sizeof(T) > bytes.size())
  {
    return false;
  }
  std::memcpy(&value, bytes.data() + position, sizeof(T));
  position += sizeof(T);
  return true;
}

std::string
FormatDouble(double value)
{
  std::ostringstream text;
  text << std::setprecision(17) << value;
  return text.str();
}

std::string
SerializeHeader(const KDBrainExtractionTorchModel::Implementation & model)
{
  const auto &       a = model.NetworkArchitecture;
  const auto &       c = model.PreprocessingContract;
  std::ostringstream header;
  const bool         refiner = model.Role == KDBrainExtractionTorchModel::RoleEnum::Refiner;
  header << "role=" << KDBrainExtractionTorchModel::RoleToString(model.Role) << "\n"
         << "architecture=" << (refiner ? "MLP" : "UNet++3D") << "\n";
  if (refiner)
  {
    // Only a refiner's header has it, so earlier models keep their bytes and checksums.
    header << "architecture.input_features=" << KDBrainExtractionBoundaryRefinement::NumberOfFeatures << "\n";
  }
  header << "architecture.depth=" << a.Depth << "\n"
         << "architecture.base_width=" << a.BaseWidth << "\n"
         << "architecture.normalization=" << a.Normalization << "\n"
         << "architecture.dropout=" << FormatDouble(a.Dropout) << "\n"
         << "architecture.deep_supervision=" << (a.DeepSupervision ? 1 : 0) << "\n"
         << "preprocessing.working_spacing_mm=" << FormatDouble(c.WorkingSpacing[0]) << " "
         << FormatDouble(c.WorkingSpacing[1]) << " " << FormatDouble(c.WorkingSpacing[2]) << "\n"
         << "preprocessing.orientation=LPS axis-aligned grid over the input's physical extent\n"
         << "preprocessing.size_multiple=" << c.SizeMultiple << "\n"
         << "preprocessing.intensity=percentile window to [0,1]\n"
         << "preprocessing.lower_percentile=" << FormatDouble(c.LowerPercentile) << "\n"
         << "preprocessing.upper_percentile=" << FormatDouble(c.UpperPercentile) << "\n"
         << "preprocessing.maximum_voxels=" << c.MaximumNumberOfVoxels << "\n";
  for (const auto & entry : model.Metadata)
  {
    header << "info." << entry.first << "=" << entry.second << "\n";
  }
  return header.str();
}

std::map<std::string, std::string>
ParseHeader(const std::string & header, const std::string & fileName)
{
  std::map<std::string, std::string> entries;
  std::istringstream                 lines(header);
  std::string                        line;
  while (std::getline(lines, line))
  {
    const auto equals = line.find('=');
    if (equals == std::string::npos || equals == 0)
    {
      itkGenericExceptionMacro(<< fileName << ": malformed model header line '" << line << "'");
    }
    entries[line.substr(0, equals)] = line.substr(equals + 1);
  }
  return entries;
}

std::string
RequireEntry(const std::map<std::string, std::string> & entries, const std::string & key, const std::string & fileName)
{
  const auto found = entries.find(key);
  if (found == entries.end())
  {
    itkGenericExceptionMacro(<< fileName << ": the model header has no '" << key << "' entry");
  }
  return found->second;
}

template <typename T>
T
ParseNumber(const std::string & text, const std::string & key, const std::string & fileName)
{
  std::istringstream stream(text);
  T                  value{};
  stream >> value;
  if (stream.fail())
  {
    itkGenericExceptionMacro(<< fileName << ": the model header entry '" << key << "' is not a number: '" << text
                             << "'");
  }
  return value;
}

/** What torch::nn::Module::save writes, with CPU copies of the tensors: the
 * network stays where it is (Save is const), and files do not depend on the
 * device that trained them. */
void
WriteToArchive(const torch::nn::Module & module, torch::serialize::OutputArchive & archive)
{
  auto onCpu = [](const torch::Tensor & tensor) {
    return tensor.detach().to(torch::kCPU).requires_grad_(tensor.requires_grad());
  };
  for (const auto & parameter : module.named_parameters(/*recurse=*/false))
  {
    archive.write(parameter.key(), onCpu(parameter.value()));
  }
  for (const auto & buffer : module.named_buffers(/*recurse=*/false))
  {
    archive.write(buffer.key(), onCpu(buffer.value()), /*is_buffer=*/true);
  }
  for (const auto & child : module.named_children())
  {
    if (child.value()->is_serializable())
    {
      torch::serialize::OutputArchive childArchive(archive.compilation_unit());
      WriteToArchive(*child.value(), childArchive);
      archive.write(child.key(), childArchive);
    }
  }
}

std::string
SerializeWeights(const torch::nn::Module & network)
{
  torch::serialize::OutputArchive archive;
  WriteToArchive(network, archive);
  std::ostringstream stream(std::ios::binary);
  archive.save_to(stream);
  return stream.str();
}
} // namespace

UNetPlusPlusOptions
KDBrainExtractionTorchModel::Implementation::MakeNetworkOptions() const
{
  UNetPlusPlusOptions options;
  options.Depth = static_cast<int>(NetworkArchitecture.Depth);
  options.BaseWidth = static_cast<int>(NetworkArchitecture.BaseWidth);
  options.Normalization = NetworkArchitecture.Normalization;
  options.Dropout = NetworkArchitecture.Dropout;
  options.DeepSupervision = NetworkArchitecture.DeepSupervision;
  return options;
}

BoundaryRefinementNetworkOptions
KDBrainExtractionTorchModel::Implementation::MakeRefinerOptions() const
{
  BoundaryRefinementNetworkOptions options;
  options.InputFeatures = static_cast<int>(KDBrainExtractionBoundaryRefinement::NumberOfFeatures);
  options.HiddenLayers = static_cast<int>(NetworkArchitecture.Depth);
  options.HiddenWidth = static_cast<int>(NetworkArchitecture.BaseWidth);
  return options;
}

void
KDBrainExtractionTorchModel::Implementation::BuildNetwork()
{
  Network = nullptr;
  Refiner = nullptr;
  if (Role == RoleEnum::Refiner)
  {
    Refiner = BoundaryRefinementNetwork(MakeRefinerOptions());
  }
  else
  {
    Network = UNetPlusPlus(MakeNetworkOptions());
  }
}

torch::nn::Module *
KDBrainExtractionTorchModel::Implementation::GetNetworkModule() const
{
  if (Network)
  {
    return Network.ptr().get();
  }
  return Refiner ? Refiner.ptr().get() : nullptr;
}

bool
KDBrainExtractionHaveSameWeightLayout(const KDBrainExtractionTorchModel::Architecture & a,
                                      const KDBrainExtractionTorchModel::Architecture & b)
{
  return a.Depth == b.Depth && a.BaseWidth == b.BaseWidth && a.Normalization == b.Normalization &&
         a.DeepSupervision == b.DeepSupervision;
}

torch::Device
KDBrainExtractionParseDevice(const std::string & device)
{
  if (device.empty() || device == "auto")
  {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  if (device == "cpu")
  {
    return torch::Device(torch::kCPU);
  }
  if (device.rfind("cuda", 0) == 0)
  {
    int index = 0;
    if (device.size() > 4)
    {
      char * end = nullptr;
      index = device[4] == ':' ? static_cast<int>(std::strtol(device.c_str() + 5, &end, 10)) : -1;
      if (device[4] != ':' || end == device.c_str() + 5 || *end != '\0' || index < 0)
      {
        itkGenericExceptionMacro(<< "invalid device '" << device << "' (use cpu, cuda, cuda:N or auto)");
      }
    }
    if (!torch::cuda::is_available())
    {
      itkGenericExceptionMacro(<< "device '" << device
                               << "' was requested, but CUDA is not available (this LibTorch has no CUDA "
                                  "support or no CUDA device is present); use --device cpu");
    }
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
    {
      itkGenericExceptionMacro(<< "device '" << device << "' was requested, but only " << count
                               << " CUDA device(s) are present");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  itkGenericExceptionMacro(<< "invalid device '" << device << "' (use cpu, cuda, cuda:N or auto)");
}

KDBrainExtractionTorchModel::KDBrainExtractionTorchModel()
  : m_Implementation(std::make_unique<Implementation>())
{}

KDBrainExtractionTorchModel::~KDBrainExtractionTorchModel() = default;

KDBrainExtractionTorchModel::Implementation &
KDBrainExtractionTorchModel::GetImplementation() const
{
  return *m_Implementation;
}

void
KDBrainExtractionTorchModel::Initialize(RoleEnum role, const Architecture & architecture, const Contract & contract,
                                        unsigned int seed)
{
  auto & model = *m_Implementation;
  model.Role = role;
  model.NetworkArchitecture = architecture;
  model.PreprocessingContract = contract;
  if (role == RoleEnum::Refiner)
  {
    // A perceptron of points: no normalisation layers, no dropout, no grid to divide.
    model.NetworkArchitecture.Normalization = "none";
    model.NetworkArchitecture.Dropout = 0.0;
    model.NetworkArchitecture.DeepSupervision = false;
    model.PreprocessingContract.SizeMultiple = 1;
  }
  else
  {
    model.PreprocessingContract.SizeMultiple = std::max(contract.SizeMultiple, 1u << architecture.Depth);
  }
  {
    // The weights are drawn from LibTorch's default CPU generator, seeded for
    // this network; its state before is put back, so that a library call
    // leaves the application's random numbers as they were. (Not under the
    // generator's mutex: every draw takes it.)
    auto       generator = at::detail::getDefaultCPUGenerator();
    const auto state = generator.get_state();
    generator.set_current_seed(seed);
    try
    {
      model.BuildNetwork();
    }
    catch (const std::exception & error)
    {
      generator.set_state(state);
      itkExceptionMacro(<< "cannot build the network: " << error.what());
    }
    generator.set_state(state);
  }
  model.GetNetworkModule()->to(model.Device);
  model.FileName.clear();
  model.Checksum.clear();
  this->Modified();
}

void
KDBrainExtractionTorchModel::AverageWeightsOf(const std::vector<ConstPointer> & models)
{
  if (models.empty())
  {
    itkExceptionMacro(<< "cannot average the weights of no models");
  }
  const auto describe = [](const Self * model) {
    return model->GetFileName().empty() ? std::string("a model in memory") : model->GetFileName();
  };
  // Copied, not referenced: Initialize() below replaces this model's
  // network and settings, and this model may be one of those averaged.
  const Self *       first = models.front().GetPointer();
  const RoleEnum     role = first->GetRole();
  const Architecture architecture = first->GetArchitecture();
  const Contract     contract = first->GetContract();
  for (const auto & model : models)
  {
    if (model.IsNull() || !model->GetImplementation().GetNetworkModule())
    {
      itkExceptionMacro(<< "cannot average the weights of a model without a network (Load or Initialize first)");
    }
    const auto & modelContract = model->GetContract();
    if (model->GetRole() != role || !KDBrainExtractionHaveSameWeightLayout(model->GetArchitecture(), architecture) ||
        model->GetArchitecture().Dropout != architecture.Dropout ||
        modelContract.WorkingSpacing != contract.WorkingSpacing ||
        modelContract.SizeMultiple != contract.SizeMultiple ||
        modelContract.LowerPercentile != contract.LowerPercentile ||
        modelContract.UpperPercentile != contract.UpperPercentile)
    {
      itkExceptionMacro(<< describe(model) << ": cannot be averaged with " << describe(first)
                        << ": role, architecture or preprocessing differ");
    }
  }
  using NamedTensors = torch::OrderedDict<std::string, torch::Tensor>;
  std::vector<NamedTensors> parameters;
  std::vector<NamedTensors> buffers;
  std::string               checksums;
  for (const auto & model : models)
  {
    parameters.push_back(model->GetImplementation().GetNetworkModule()->named_parameters(true));
    buffers.push_back(model->GetImplementation().GetNetworkModule()->named_buffers(true));
    checksums += (checksums.empty() ? "" : ",") + (model->GetChecksum().empty() ? "unsaved" : model->GetChecksum());
  }
  this->Initialize(role, architecture, contract, 0);
  auto &             network = *m_Implementation->GetNetworkModule();
  torch::NoGradGuard noGrad;
  const auto average = [](torch::Tensor & target, const std::string & name, const std::vector<NamedTensors> & sources) {
    if (!target.is_floating_point())
    {
      // Counters such as batch norm's number of batches seen: not averaged.
      target.copy_(sources.front()[name]);
      return;
    }
    // Summed in double precision: the rounding hardly depends on the models' order.
    auto sum = torch::zeros_like(target, torch::dtype(torch::kDouble).device(torch::kCPU));
    for (const auto & source : sources)
    {
      sum += source[name].to(torch::kCPU, torch::kDouble);
    }
    target.copy_(sum / static_cast<double>(sources.size()));
  };
  for (auto & parameter : network.named_parameters(true))
  {
    average(parameter.value(), parameter.key(), parameters);
  }
  for (auto & buffer : network.named_buffers(true))
  {
    average(buffer.value(), buffer.key(), buffers);
  }
  m_Implementation->Metadata.clear();
  m_Implementation->Metadata["average.models"] = checksums;
  this->Modified();
}

void
KDBrainExtractionTorchModel::Load(const std::string & fileName)
{
  // A FIFO or /dev/zero would block or fill memory before any check.
  KDBrainExtractionInputFile::CheckFile(fileName);
  std::ifstream file(fileName, std::ios::binary);
  if (!file)
  {
    itkExceptionMacro(<< fileName << ": cannot open the model file (" << std::strerror(errno) << ")");
  }
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (bytes.size() < sizeof(ModelMagic) || std::memcmp(bytes.data(), ModelMagic, sizeof(ModelMagic)) != 0)
  {
    itkExceptionMacro(<< fileName << ": not a KDBrainExtraction model file (wrong magic number)");
  }
  std::size_t position = sizeof(ModelMagic);
  uint32_t    version = 0;
  uint64_t    headerLength = 0;
  if (!ReadBinary(bytes, position, version) || !ReadBinary(bytes, position, headerLength))
  {
    itkExceptionMacro(<< fileName << ": the model file is truncated");
  }
  if (version == 0 || version > FormatVersion)
  {
    itkExceptionMacro(<< fileName << ": model format version " << version << " is not supported (this build reads "
                      << FormatVersion << ")");
  }
  if (headerLength > MaximumSectionLength || position + headerLength > bytes.size())
  {
    itkExceptionMacro(<< fileName << ": the model file is truncated");
  }
  const std::string header = bytes.substr(position, headerLength);
  position += headerLength;
  uint64_t payloadLength = 0;
  if (!ReadBinary(bytes, position, payloadLength) || payloadLength > MaximumSectionLength ||
      position + payloadLength + sizeof(uint64_t) > bytes.size())
  {
    itkExceptionMacro(<< fileName << ": the model file is truncated");
  }
  const std::string payload = bytes.substr(position, payloadLength);
  position += payloadLength;
  uint64_t storedChecksum = 0;
  ReadBinary(bytes, position, storedChecksum);
  if (position != bytes.size())
  {
    itkExceptionMacro(<< fileName << ": the model file has " << bytes.size() - position
                      << " unexpected trailing bytes");
  }
  if (Fnv1a64(header, payload) != storedChecksum)
  {
    itkExceptionMacro(<< fileName << ": checksum mismatch, the model file is corrupted");
  }

  const auto        entries = ParseHeader(header, fileName);
  auto              loaded = std::make_unique<Implementation>();
  const std::string role = RequireEntry(entries, "role", fileName);
  if (role == "teacher")
  {
    loaded->Role = RoleEnum::Teacher;
  }
  else if (role == "student")
  {
    loaded->Role = RoleEnum::Student;
  }
  else if (role == "refiner")
  {
    loaded->Role = RoleEnum::Refiner;
    // The features are this build's: a refiner of another layout cannot be fed.
    const auto features = ParseNumber<unsigned int>(
      RequireEntry(entries, "architecture.input_features", fileName), "input_features", fileName);
    if (features != KDBrainExtractionBoundaryRefinement::NumberOfFeatures)
    {
      itkExceptionMacro(<< fileName << ": the refiner takes " << features << " features per point, this build makes "
                        << KDBrainExtractionBoundaryRefinement::NumberOfFeatures);
    }
  }
  else
  {
    itkExceptionMacro(<< fileName << ": unknown model role '" << role << "'");
  }
  auto & a = loaded->NetworkArchitecture;
  a.Depth = ParseNumber<unsigned int>(RequireEntry(entries, "architecture.depth", fileName), "depth", fileName);
  a.BaseWidth =
    ParseNumber<unsigned int>(RequireEntry(entries, "architecture.base_width", fileName), "base_width", fileName);
  a.Normalization = RequireEntry(entries, "architecture.normalization", fileName);
  a.Dropout = ParseNumber<double>(RequireEntry(entries, "architecture.dropout", fileName), "dropout", fileName);
  a.DeepSupervision = RequireEntry(entries, "architecture.deep_supervision", fileName) == "1";
  auto &             c = loaded->PreprocessingContract;
  std::istringstream spacing(RequireEntry(entries, "preprocessing.working_spacing_mm", fileName));
  spacing >> c.WorkingSpacing[0] >> c.WorkingSpacing[1] >> c.WorkingSpacing[2];
  if (spacing.fail() || !(c.WorkingSpacing[0] > 0 && c.WorkingSpacing[1] > 0 && c.WorkingSpacing[2] > 0))
  {
    itkExceptionMacro(<< fileName << ": invalid working spacing in the model header");
  }
  c.SizeMultiple = ParseNumber<unsigned int>(
    RequireEntry(entries, "preprocessing.size_multiple", fileName), "size_multiple", fileName);
  c.LowerPercentile = ParseNumber<double>(
    RequireEntry(entries, "preprocessing.lower_percentile", fileName), "lower_percentile", fileName);
  c.UpperPercentile = ParseNumber<double>(
    RequireEntry(entries, "preprocessing.upper_percentile", fileName), "upper_percentile", fileName);
  c.MaximumNumberOfVoxels = ParseNumber<std::size_t>(
    RequireEntry(entries, "preprocessing.maximum_voxels", fileName), "maximum_voxels", fileName);
  // Bounds before the network is built: a header asking for base_width 3000
  // would allocate tens of GB before the weights could disagree.
  if (a.Depth < 1 || a.Depth > 6 || a.BaseWidth < 1 || a.BaseWidth > 256 || !(a.Dropout >= 0.0 && a.Dropout < 1.0))
  {
    itkExceptionMacro(<< fileName << ": implausible architecture in the model header (depth " << a.Depth
                      << ", base width " << a.BaseWidth << ", dropout " << a.Dropout
                      << "; this build reads depth 1-6, base width 1-256)");
  }
  if (c.SizeMultiple < 1 || c.SizeMultiple > 1024 ||
      !(c.WorkingSpacing[0] <= 20.0 && c.WorkingSpacing[1] <= 20.0 && c.WorkingSpacing[2] <= 20.0 &&
        c.WorkingSpacing[0] >= 0.1 && c.WorkingSpacing[1] >= 0.1 && c.WorkingSpacing[2] >= 0.1) ||
      !(c.LowerPercentile >= 0.0 && c.LowerPercentile < c.UpperPercentile && c.UpperPercentile <= 100.0) ||
      c.MaximumNumberOfVoxels < 1 ||
      c.MaximumNumberOfVoxels > KDBrainExtractionInputFile::GetLimits().MaximumNumberOfVoxels)
  {
    itkExceptionMacro(<< fileName << ": implausible preprocessing contract in the model header");
  }
  for (const auto & entry : entries)
  {
    if (entry.first.rfind("info.", 0) == 0)
    {
      loaded->Metadata[entry.first.substr(5)] = entry.second;
    }
  }

  try
  {
    CheckWeightArchive(payload);
  }
  catch (const std::exception & error)
  {
    std::string message = error.what();
    message = message.substr(0, message.find('\n'));
    itkExceptionMacro(<< fileName << ": damaged weights (" << message << ")");
  }
  try
  {
    loaded->BuildNetwork();
    torch::nn::Module & network = *loaded->GetNetworkModule();
    // Module::load() replaces tensors whatever their shape: record the shapes
    // the header's architecture needs and check them after loading.
    std::map<std::string, std::vector<int64_t>> expectedShapes;
    for (const auto & tensor : network.named_parameters())
    {
      expectedShapes[tensor.key()] = tensor.value().sizes().vec();
    }
    for (const auto & tensor : network.named_buffers())
    {
      expectedShapes[tensor.key()] = tensor.value().sizes().vec();
    }
    torch::serialize::InputArchive archive;
    std::istringstream             stream(payload, std::ios::binary);
    archive.load_from(stream);
    network.load(archive);
    auto checkShape = [&expectedShapes](const std::string & name, const torch::Tensor & tensor) {
      if (tensor.sizes().vec() != expectedShapes[name])
      {
        throw std::runtime_error("'" + name + "' has shape " + c10::str(tensor.sizes()) + ", the architecture needs " +
                                 c10::str(c10::IntArrayRef(expectedShapes[name])));
      }
    };
    for (const auto & tensor : network.named_parameters())
    {
      checkShape(tensor.key(), tensor.value());
    }
    for (const auto & tensor : network.named_buffers())
    {
      checkShape(tensor.key(), tensor.value());
    }
  }
  catch (const std::exception & error)
  {
    std::string message = error.what();
    message = message.substr(0, message.find('\n'));
    itkExceptionMacro(<< fileName << ": the weights do not match the architecture in the header (" << message << ")");
  }
  loaded->Device = m_Implementation->Device;
  loaded->GetNetworkModule()->to(loaded->Device);
  loaded->GetNetworkModule()->eval();
  loaded->FileName = fileName;
  loaded->Checksum = ToHex(storedChecksum);
  m_Implementation = std::move(loaded);
  this->Modified();
}

void
KDBrainExtractionTorchModel::Save(const std::string & fileName) const
{
  auto &              model = *m_Implementation;
  torch::nn::Module * network = model.GetNetworkModule();
  if (!network)
  {
    itkExceptionMacro(<< "cannot save " << fileName << ": no network (Load or Initialize first)");
  }
  const std::string header = SerializeHeader(model);
  std::string       payload;
  {
    const std::lock_guard<std::mutex> lock(model.PredictMutex);
    payload = SerializeWeights(*network);
  }
  const uint64_t     checksum = Fnv1a64(header, payload);
  std::ostringstream file(std::ios::binary);
  file.write(ModelMagic, sizeof(ModelMagic));
  WriteBinary<uint32_t>(file, FormatVersion);
  WriteBinary<uint64_t>(file, header.size());
  file << header;
  WriteBinary<uint64_t>(file, payload.size());
  file << payload;
  WriteBinary<uint64_t>(file, checksum);
  KDBrainExtractionOutputFile::WriteBytes(file.str(), fileName, "the model file");
  model.FileName = fileName;
  model.Checksum = ToHex(checksum);
}

KDBrainExtractionTorchModel::RoleEnum
KDBrainExtractionTorchModel::GetRole() const
{
  return m_Implementation->Role;
}

std::string
KDBrainExtractionTorchModel::RoleToString(RoleEnum role)
{
  switch (role)
  {
    case RoleEnum::Teacher:
      return "teacher";
    case RoleEnum::Refiner:
      return "refiner";
    default:
      return "student";
  }
}

const KDBrainExtractionTorchModel::Architecture &
KDBrainExtractionTorchModel::GetArchitecture() const
{
  return m_Implementation->NetworkArchitecture;
}

const KDBrainExtractionTorchModel::Contract &
KDBrainExtractionTorchModel::GetContract() const
{
  return m_Implementation->PreprocessingContract;
}

std::string
KDBrainExtractionTorchModel::GetFileName() const
{
  return m_Implementation->FileName;
}

void
KDBrainExtractionTorchModel::SetMetadata(const std::string & key, const std::string & value)
{
  if (key.empty() || key.find_first_of("=\n") != std::string::npos || value.find('\n') != std::string::npos)
  {
    itkExceptionMacro(<< "invalid model metadata entry '" << key << "': keys need no '=' and no line breaks");
  }
  m_Implementation->Metadata[key] = value;
  this->Modified();
}

std::string
KDBrainExtractionTorchModel::GetMetadata(const std::string & key) const
{
  const auto found = m_Implementation->Metadata.find(key);
  return found == m_Implementation->Metadata.end() ? std::string() : found->second;
}

const std::map<std::string, std::string> &
KDBrainExtractionTorchModel::GetAllMetadata() const
{
  return m_Implementation->Metadata;
}

std::string
KDBrainExtractionTorchModel::GetChecksum() const
{
  return m_Implementation->Checksum;
}

std::size_t
KDBrainExtractionTorchModel::GetNumberOfParameters() const
{
  std::size_t count = 0;
  if (const auto * network = m_Implementation->GetNetworkModule())
  {
    for (const auto & parameter : network->parameters())
    {
      count += static_cast<std::size_t>(parameter.numel());
    }
  }
  return count;
}

void
KDBrainExtractionTorchModel::SetDevice(const std::string & device)
{
  auto &              model = *m_Implementation;
  const torch::Device parsed = KDBrainExtractionParseDevice(device);
  // A model shared between filters may be predicting in another thread.
  const std::lock_guard<std::mutex> lock(model.PredictMutex);
  if (parsed != model.Device)
  {
    model.Device = parsed;
    if (auto * network = model.GetNetworkModule())
    {
      network->to(model.Device);
    }
    // Not Modified(): the weights are the same, so outputs computed on the
    // other device are not out of date (a filter's MTime includes its model's).
  }
}

std::string
KDBrainExtractionTorchModel::GetDevice() const
{
  return m_Implementation->Device.str();
}

bool
KDBrainExtractionTorchModel::IsCudaAvailable()
{
  return torch::cuda::is_available();
}

void
KDBrainExtractionTorchModel::SetNumberOfThreads(unsigned int threads)
{
  // LibTorch starts every thread it is asked for: 100000 never returns.
  if (threads > MaximumNumberOfThreads)
  {
    itkGenericExceptionMacro(<< threads << " threads asked for; at most " << MaximumNumberOfThreads);
  }
  if (threads > 0 && static_cast<int>(threads) != at::get_num_threads())
  {
    at::set_num_threads(static_cast<int>(threads));
  }
}

void
KDBrainExtractionTorchModel::RetainFreedMemory()
{
#if defined(__GLIBC__)
  // No mmap'd blocks (they are unmapped when freed) and no trimming of the heap.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
  // Grow the heap once by more than a 1 mm head needs and ask for transparent
  // huge pages there: a fresh 2 MB page costs one fault instead of 512. The
  // pages are only backed when first written, so this reserves address space,
  // not memory; freed, the block stays in the heap (no trimming) for the
  // network's activations. Without THP (or with THP off) it changes nothing.
  constexpr std::size_t reserve = std::size_t{ 1536 } << 20;
  constexpr std::size_t hugePage = std::size_t{ 2 } << 20;
  if (void * block = std::malloc(reserve))
  {
    const auto start = (reinterpret_cast<std::uintptr_t>(block) + hugePage - 1) & ~(hugePage - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(block) + reserve) & ~(hugePage - 1);
    if (end > start)
    {
      madvise(reinterpret_cast<void *>(start), end - start, MADV_HUGEPAGE);
    }
    std::free(block);
  }
#endif
}

unsigned int
KDBrainExtractionTorchModel::GetNumberOfThreads()
{
  return static_cast<unsigned int>(at::get_num_threads());
}

namespace
{
/** (first voxel, number of voxels) per axis (z, y, x) of the head in a
 * normalised working volume [z, y, x], with a margin, grown towards a multiple
 * of \a multiple where the volume allows. A slice belongs to the head if more
 * than 0.5% of it is brighter than 0.1 (MRI background is near 0); that
 * ignores isolated noise and ghosting. A volume without such slices is kept whole. */
std::array<std::pair<int64_t, int64_t>, 3>
FindHeadBox(const torch::Tensor & volume, int64_t multiple)
{
  constexpr int64_t                          margin = 8;
  const torch::Tensor                        head = volume > 0.1;
  std::array<std::pair<int64_t, int64_t>, 3> box;
  for (int axis = 0; axis < 3; ++axis)
  {
    const int64_t        extent = volume.size(axis);
    std::vector<int64_t> others;
    for (int other = 0; other < 3; ++other)
    {
      if (other != axis)
      {
        others.push_back(other);
      }
    }
    const int64_t       sliceVoxels = volume.numel() / extent;
    const torch::Tensor slices = torch::nonzero(head.sum(others) > sliceVoxels / 200).flatten();
    if (slices.numel() == 0)
    {
      return { { { 0, volume.size(0) }, { 0, volume.size(1) }, { 0, volume.size(2) } } };
    }
    int64_t       low = std::max<int64_t>(0, slices.min().item<int64_t>() - margin);
    const int64_t high = std::min<int64_t>(extent, slices.max().item<int64_t>() + 1 + margin);
    const int64_t length = std::min(extent, (high - low + multiple - 1) / multiple * multiple);
    low = std::min(low, extent - length);
    box[axis] = { low, length };
  }
  return box;
}
} // namespace

void
KDBrainExtractionTorchModel::Predict(const float * input, const std::array<std::size_t, 3> & size, float * output,
                                     const ProgressCallback & progress, bool mirrorLeftRight) const
{
  auto & model = *m_Implementation;
  if (!model.Network)
  {
    itkExceptionMacro(<< (model.Refiner ? "a refiner model predicts boundary points, not volumes"
                                        : "no network: load a model file first"));
  }
  const std::lock_guard<std::mutex> lock(model.PredictMutex);
  c10::InferenceMode                inferenceMode;
  model.Network->eval();

  const torch::Tensor volume = KDBrainExtractionBufferToTensor(input, size);
  const int64_t       multiple = 1 << model.NetworkArchitecture.Depth;
  // The network sees the head's bounding box only, which saves the empty
  // field of view around the head (little on IXI, whose field of view is
  // tight; half the voxels on a generous one). The output is 0 outside it.
  const auto           box = FindHeadBox(volume[0][0], multiple);
  torch::Tensor        crop = volume;
  std::vector<int64_t> padding;
  for (int axis = 2; axis >= 0; --axis)
  {
    crop = crop.narrow(axis + 2, box[axis].first, box[axis].second);
  }
  for (int axis = 2; axis >= 0; --axis)
  {
    padding.push_back(0);
    padding.push_back((multiple - box[axis].second % multiple) % multiple);
  }
  crop = torch::constant_pad_nd(crop, padding, 0.0).to(model.Device);

  const double passes = mirrorLeftRight ? 2.0 : 1.0;
  auto         runPass = [&](const torch::Tensor & volumeOnDevice, double progressStart) {
    const torch::Tensor result = model.Network->forward(
      volumeOnDevice, [&](double fraction) { return !progress || progress((progressStart + fraction) / passes); });
    if (!result.defined())
    {
      throw ProcessAborted(__FILE__, __LINE__);
    }
    // Both roles end in a sigmoid: the student's brain probability, the
    // teacher's normalised intensity in [0, 1].
    return torch::sigmoid(result);
  };
  // x is the last tensor dimension (N, C, z, y, x). The padded crop is
  // mirrored whole, so the mirrored-back output lines up voxel for voxel.
  constexpr int64_t xDimension = 4;
  torch::Tensor     prediction = runPass(crop, 0.0);
  if (mirrorLeftRight)
  {
    prediction.add_(runPass(crop.flip({ xDimension }), 1.0).flip({ xDimension })).mul_(0.5);
  }
  prediction = prediction.to(torch::kCPU);
  // Written straight into the caller's buffer: no copy of the whole volume.
  torch::Tensor target = torch::from_blob(output, volume.sizes(), torch::kFloat32);
  target.zero_();
  for (int axis = 2; axis >= 0; --axis)
  {
    target = target.narrow(axis + 2, box[axis].first, box[axis].second);
    prediction = prediction.narrow(axis + 2, 0, box[axis].second);
  }
  target.copy_(prediction);
}

void
KDBrainExtractionTorchModel::PredictBoundary(const float * features, std::size_t numberOfPoints,
                                             float * probabilities) const
{
  auto & model = *m_Implementation;
  if (!model.Refiner)
  {
    itkExceptionMacro(<< "boundary points need a refiner model, not a " << RoleToString(model.Role));
  }
  const std::lock_guard<std::mutex> lock(model.PredictMutex);
  c10::InferenceMode                inferenceMode;
  model.Refiner->eval();
  const auto    numberOfFeatures = static_cast<int64_t>(KDBrainExtractionBoundaryRefinement::NumberOfFeatures);
  torch::Tensor input = torch::from_blob(
    const_cast<float *>(features), { static_cast<int64_t>(numberOfPoints), numberOfFeatures }, torch::kFloat32);
  const torch::Tensor result = torch::sigmoid(model.Refiner->Infer(input.to(model.Device))).to(torch::kCPU);
  std::memcpy(probabilities, result.contiguous().data_ptr<float>(), numberOfPoints * sizeof(float));
}

namespace
{
// The file that holds this code: the module's shared library, or the
// executable it is linked into. Models are installed relative to it, so that
// an install tree, a build tree and a Python package can be moved.
std::string
FileHoldingThisCode()
{
#if defined(_WIN32)
  HMODULE module = nullptr;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          reinterpret_cast<LPCWSTR>(&FileHoldingThisCode),
                          &module))
  {
    return {};
  }
  std::wstring path(32768, L'\0');
  const DWORD  length = GetModuleFileNameW(module, path.data(), static_cast<DWORD>(path.size()));
  if (length == 0 || length >= path.size())
  {
    return {};
  }
  path.resize(length);
  return itksys::Encoding::ToNarrow(path);
#else
  Dl_info information{};
  if (dladdr(reinterpret_cast<void *>(&FileHoldingThisCode), &information) == 0 || information.dli_fname == nullptr)
  {
    return {};
  }
  return itksys::SystemTools::GetRealPath(information.dli_fname);
#endif
}
} // namespace

std::string
KDBrainExtractionTorchModel::GetDefaultModelDirectory()
{
  const char * environment = std::getenv("KDBET_MODEL_DIR");
  if (environment != nullptr && *environment != '\0')
  {
    // Only there: falling back to other models would run what was not asked for.
    return environment;
  }
  const std::string holder = FileHoldingThisCode();
  if (holder.empty())
  {
    return {};
  }
  // lib/libKDBrainExtraction.so or bin/kdbet -> share/KDBrainExtraction/Models,
  // in install trees and in build trees (the build copies the models there).
  return itksys::SystemTools::CollapseFullPath(itksys::SystemTools::GetFilenamePath(holder) +
                                               "/../share/KDBrainExtraction/Models");
}

std::string
KDBrainExtractionTorchModel::FindDefaultModelFile(RoleEnum role)
{
  const std::string directory = GetDefaultModelDirectory();
  const std::string file = directory + "/kdbet_" + RoleToString(role) + ".kdbm";
  if (!directory.empty() && itksys::SystemTools::FileExists(file, true))
  {
    return file;
  }
  return {};
}

void
KDBrainExtractionTorchModel::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  const auto & model = *m_Implementation;
  const auto & a = model.NetworkArchitecture;
  const auto & c = model.PreprocessingContract;
  os << indent << "FileName: " << model.FileName << std::endl;
  os << indent << "Role: " << RoleToString(model.Role) << std::endl;
  os << indent << "Architecture: UNet++3D depth " << a.Depth << ", base width " << a.BaseWidth << ", "
     << a.Normalization << " normalization, dropout " << a.Dropout << ", deep supervision "
     << (a.DeepSupervision ? "on" : "off") << std::endl;
  os << indent << "NumberOfParameters: " << GetNumberOfParameters() << std::endl;
  os << indent << "WorkingSpacing: " << c.WorkingSpacing[0] << " " << c.WorkingSpacing[1] << " " << c.WorkingSpacing[2]
     << " mm" << std::endl;
  os << indent << "SizeMultiple: " << c.SizeMultiple << std::endl;
  os << indent << "IntensityPercentiles: " << c.LowerPercentile << " " << c.UpperPercentile << std::endl;
  os << indent << "MaximumNumberOfVoxels: " << c.MaximumNumberOfVoxels << std::endl;
  os << indent << "Device: " << model.Device.str() << std::endl;
  os << indent << "Checksum: " << model.Checksum << std::endl;
  for (const auto & entry : model.Metadata)
  {
    os << indent << "Metadata " << entry.first << ": " << entry.second << std::endl;
  }
}
} // end namespace itk
