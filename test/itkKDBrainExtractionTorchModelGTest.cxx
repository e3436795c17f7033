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

#include "itkGTest.h"
#include "itkKDBrainExtractionTestUtilities.h"
#include "itksys/SystemTools.hxx"

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sys/stat.h>
#include <iterator>

namespace
{
using itk::KDBrainExtractionTorchModel;
using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
using namespace itk::KDBrainExtractionTesting;

std::string
TemporaryFile(const std::string & name)
{
  const std::string directory = itksys::SystemTools::GetCurrentWorkingDirectory() + "/gtest-model-files";
  itksys::SystemTools::MakeDirectory(directory);
  return directory + "/" + name;
}

std::string
ReadBytes(const std::string & fileName)
{
  std::ifstream file(fileName, std::ios::binary);
  return { std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>() };
}

void
WriteBytes(const std::string & fileName, const std::string & bytes)
{
  std::ofstream file(fileName, std::ios::binary | std::ios::trunc);
  file << bytes;
}

/** The FNV-1a 64 checksum the format stores last. */
uint64_t
Fnv1a64(const std::string & text)
{
  uint64_t hash = 14695981039346656037ull;
  for (const char c : text)
  {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

/** The header and the weights of a model file. */
std::pair<std::string, std::string>
SplitModelFile(const std::string & bytes)
{
  uint64_t headerLength = 0;
  std::memcpy(&headerLength, bytes.data() + 12, sizeof(headerLength));
  return { bytes.substr(20, headerLength), bytes.substr(20 + headerLength + 8, bytes.size() - 20 - headerLength - 16) };
}

/** A model file of \a bytes' magic and version with \a header and \a payload,
 * lengths and checksum valid. */
std::string
AssembleModelFile(const std::string & bytes, const std::string & header, const std::string & payload)
{
  std::string    result = bytes.substr(0, 12);
  const uint64_t headerLength = header.size();
  result.append(reinterpret_cast<const char *>(&headerLength), sizeof(headerLength));
  result += header;
  const uint64_t payloadLength = payload.size();
  result.append(reinterpret_cast<const char *>(&payloadLength), sizeof(payloadLength));
  result += payload;
  const uint64_t checksum = Fnv1a64(header + payload);
  result.append(reinterpret_cast<const char *>(&checksum), sizeof(checksum));
  return result;
}

/** \a bytes (a model file) with the header entry that starts with \a entry
 * replaced by \a replacement, lengths and checksum made valid again. */
std::string
WithHeaderEntry(const std::string & bytes, const std::string & entry, const std::string & replacement)
{
  auto       parts = SplitModelFile(bytes);
  const auto at = parts.first.find(entry);
  const auto end = parts.first.find('\n', at);
  parts.first.replace(at, end - at, replacement);
  return AssembleModelFile(bytes, parts.first, parts.second);
}

/** \a bytes (a model file) whose largest weight record keeps only
 * \a keptFraction of its bytes, as a writer that failed part-way or a crafted
 * file would have it; the zip archive and the checksum are valid. */
std::string
WithShortWeightRecord(const std::string & bytes, double keptFraction)
{
  const auto                             parts = SplitModelFile(bytes);
  std::istringstream                     stream(parts.second, std::ios::binary);
  caffe2::serialize::PyTorchStreamReader reader(&stream);
  std::string                            largest;
  std::size_t                            largestSize = 0;
  for (const auto & name : reader.getAllRecords())
  {
    const std::size_t size = std::get<1>(reader.getRecord(name));
    if (name.rfind("data/", 0) == 0 && size > largestSize)
    {
      largest = name;
      largestSize = size;
    }
  }
  std::string payload;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&payload](const void * data, std::size_t size) {
      payload.append(static_cast<const char *>(data), size);
      return size;
    });
    for (const auto & name : reader.getAllRecords())
    {
      if (name == "version")
      {
        continue; // the writer writes its own
      }
      auto        record = reader.getRecord(name);
      std::size_t size = std::get<1>(record);
      if (name == largest)
      {
        size = static_cast<std::size_t>(size * keptFraction);
      }
      writer.writeRecord(name, std::get<0>(record).get(), size);
    }
    writer.writeEndOfFile();
  }
  return AssembleModelFile(bytes, parts.first, payload);
}

std::string
LoadError(const std::string & fileName)
{
  auto model = KDBrainExtractionTorchModel::New();
  try
  {
    model->Load(fileName);
  }
  catch (const itk::ExceptionObject & error)
  {
    return error.GetDescription();
  }
  return "no error";
}

std::vector<float>
PredictRamp(const KDBrainExtractionTorchModel * model, const std::array<std::size_t, 3> & size)
{
  std::vector<float> input(size[0] * size[1] * size[2]);
  for (std::size_t i = 0; i < input.size(); ++i)
  {
    input[i] = static_cast<float>((i * 37) % 101) / 100.0f;
  }
  std::vector<float> output(input.size());
  model->Predict(input.data(), size, output.data());
  return output;
}
} // namespace

TEST(KDBrainExtractionTorchModel, FileRoundTripKeepsEverything)
{
  auto model = MakeTinyModel(RoleEnum::Teacher);
  model->SetMetadata("training.data", "synthetic");
  const std::string fileName = TemporaryFile("roundtrip.kdbm");
  model->Save(fileName);
  EXPECT_EQ(model->GetChecksum().size(), 16u);

  auto loaded = KDBrainExtractionTorchModel::New();
  loaded->Load(fileName);
  EXPECT_EQ(loaded->GetRole(), RoleEnum::Teacher);
  EXPECT_EQ(loaded->GetArchitecture().Depth, 2u);
  EXPECT_EQ(loaded->GetArchitecture().BaseWidth, 4u);
  EXPECT_EQ(loaded->GetArchitecture().Normalization, "none");
  EXPECT_EQ(loaded->GetContract().WorkingSpacing, model->GetContract().WorkingSpacing);
  EXPECT_EQ(loaded->GetContract().SizeMultiple, model->GetContract().SizeMultiple);
  EXPECT_EQ(loaded->GetMetadata("training.data"), "synthetic");
  EXPECT_EQ(loaded->GetChecksum(), model->GetChecksum());
  EXPECT_EQ(loaded->GetNumberOfParameters(), model->GetNumberOfParameters());
  EXPECT_EQ(loaded->GetFileName(), fileName);
  // Same weights: bit-identical outputs, on an odd size that needs padding.
  EXPECT_EQ(PredictRamp(model, { { 13, 10, 7 } }), PredictRamp(loaded, { { 13, 10, 7 } }));

  std::ostringstream description;
  loaded->Print(description);
  EXPECT_NE(description.str().find("Role: teacher"), std::string::npos);
}

TEST(KDBrainExtractionTorchModel, MirroringAveragesThePlainAndTheMirroredPass)
{
  auto model = MakeTinyModel(RoleEnum::Student);
  // Sizes that are multiples of the network's 4 and a ramp that is "head"
  // everywhere: no cropping or padding, so the mirrored pass must equal a
  // plain pass on the mirrored volume.
  const std::array<std::size_t, 3> size{ { 16, 12, 8 } };
  std::vector<float>               input(size[0] * size[1] * size[2]);
  for (std::size_t i = 0; i < input.size(); ++i)
  {
    input[i] = 0.2f + 0.8f * static_cast<float>((i * 37) % 101) / 100.0f;
  }
  auto mirrorX = [&size](const std::vector<float> & volume) {
    std::vector<float> mirrored(volume.size());
    for (std::size_t i = 0; i < volume.size(); ++i)
    {
      const std::size_t x = i % size[0];
      mirrored[i - x + size[0] - 1 - x] = volume[i];
    }
    return mirrored;
  };
  std::vector<float> plain(input.size());
  std::vector<float> ofMirrored(input.size());
  std::vector<float> averaged(input.size());
  model->Predict(input.data(), size, plain.data());
  model->Predict(mirrorX(input).data(), size, ofMirrored.data());
  model->Predict(input.data(), size, averaged.data(), nullptr, true);
  const std::vector<float> mirroredBack = mirrorX(ofMirrored);
  double                   largestDifference = 0.0;
  for (std::size_t i = 0; i < input.size(); ++i)
  {
    ASSERT_NEAR(averaged[i], 0.5f * (plain[i] + mirroredBack[i]), 1e-6f) << "voxel " << i;
    largestDifference = std::max(largestDifference, std::abs(static_cast<double>(plain[i] - mirroredBack[i])));
  }
  // The check means something only if the network is not mirror-symmetric.
  EXPECT_GT(largestDifference, 1e-4);

  // Progress runs once from 0 to 1 over both passes, and abort is honoured.
  std::vector<double> fractions;
  model->Predict(
    input.data(),
    size,
    averaged.data(),
    [&fractions](double fraction) {
      fractions.push_back(fraction);
      return true;
    },
    true);
  ASSERT_FALSE(fractions.empty());
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_NEAR(fractions.back(), 1.0, 1e-9);
  EXPECT_LT(fractions.front(), 0.5);
  EXPECT_THROW(model->Predict(
                 input.data(), size, averaged.data(), [](double fraction) { return fraction < 0.75; }, true),
               itk::ProcessAborted);
}

TEST(KDBrainExtractionTorchModel, DamagedOrForeignFilesAreClearErrors)
{
  auto              model = MakeTinyModel(RoleEnum::Student);
  const std::string fileName = TemporaryFile("damaged-source.kdbm");
  model->Save(fileName);
  const std::string bytes = ReadBytes(fileName);

  EXPECT_NE(LoadError(TemporaryFile("does-not-exist.kdbm")).find("does-not-exist.kdbm: no such file"),
            std::string::npos);

  const std::string truncated = TemporaryFile("truncated.kdbm");
  WriteBytes(truncated, bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(LoadError(truncated).find("truncated.kdbm: the model file is truncated"), std::string::npos);

  std::string flipped = bytes;
  flipped[bytes.size() * 3 / 4] ^= 0x55;
  const std::string corrupted = TemporaryFile("corrupted.kdbm");
  WriteBytes(corrupted, flipped);
  EXPECT_NE(LoadError(corrupted).find("checksum mismatch"), std::string::npos);

  const std::string foreign = TemporaryFile("foreign.kdbm");
  WriteBytes(foreign, "\x89PNG\r\n\x1a\n not a model at all");
  EXPECT_NE(LoadError(foreign).find("not a KDBrainExtraction model file"), std::string::npos);

  const std::string empty = TemporaryFile("empty.kdbm");
  WriteBytes(empty, "");
  EXPECT_NE(LoadError(empty).find("empty.kdbm: an empty file"), std::string::npos);

  // A FIFO would block the reader forever; /dev/zero would fill memory.
  const std::string fifo = TemporaryFile("fifo.kdbm");
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(LoadError(fifo).find("fifo.kdbm: not a regular file"), std::string::npos) << LoadError(fifo);
  EXPECT_NE(LoadError("/dev/zero").find("/dev/zero: not a regular file"), std::string::npos);

  // A header that disagrees with the weights, with a valid checksum.
  const std::string wrongArchitecture = TemporaryFile("wrong-architecture.kdbm");
  WriteBytes(wrongArchitecture, WithHeaderEntry(bytes, "architecture.base_width=4", "architecture.base_width=6"));
  EXPECT_NE(LoadError(wrongArchitecture).find("do not match the architecture"), std::string::npos)
    << LoadError(wrongArchitecture);

  // A header asking for a network of tens of GB, with a valid checksum: refused
  // before anything is built.
  const std::string huge = TemporaryFile("huge-architecture.kdbm");
  WriteBytes(huge, WithHeaderEntry(bytes, "architecture.base_width=4", "architecture.base_width=3000"));
  EXPECT_NE(LoadError(huge).find("huge-architecture.kdbm: implausible architecture"), std::string::npos)
    << LoadError(huge);
  const std::string deep = TemporaryFile("deep-architecture.kdbm");
  WriteBytes(deep, WithHeaderEntry(bytes, "architecture.depth=", "architecture.depth=9"));
  EXPECT_NE(LoadError(deep).find("implausible architecture"), std::string::npos) << LoadError(deep);

  // A weight record shorter than its tensor's shape needs (or empty), with a
  // valid archive and checksum: the tensor would point past its bytes.
  for (const double kept : { 0.5, 0.0 })
  {
    const std::string shortRecord = TemporaryFile("short-record.kdbm");
    const std::string damaged = WithShortWeightRecord(bytes, kept);
    ASSERT_LT(damaged.size(), bytes.size());
    WriteBytes(shortRecord, damaged);
    EXPECT_NE(LoadError(shortRecord).find("short-record.kdbm: damaged weights (weight record 'data/"),
              std::string::npos)
      << LoadError(shortRecord);
  }
}

TEST(KDBrainExtractionTorchModel, DeviceSelection)
{
  auto model = MakeTinyModel(RoleEnum::Student);
  EXPECT_NO_THROW(model->SetDevice("cpu"));
  EXPECT_EQ(model->GetDevice(), "cpu");
  EXPECT_THROW(model->SetDevice("tpu"), itk::ExceptionObject);
  EXPECT_THROW(model->SetDevice("cuda:x"), itk::ExceptionObject);
  EXPECT_NO_THROW(model->SetDevice("auto"));
  if (KDBrainExtractionTorchModel::IsCudaAvailable())
  {
    EXPECT_NO_THROW(model->SetDevice("cuda:0"));
    EXPECT_EQ(model->GetDevice(), "cuda:0");
    EXPECT_THROW(model->SetDevice("cuda:999"), itk::ExceptionObject);
  }
  else
  {
    EXPECT_EQ(model->GetDevice(), "cpu");
    try
    {
      model->SetDevice("cuda");
      ADD_FAILURE() << "CUDA accepted without CUDA";
    }
    catch (const itk::ExceptionObject & error)
    {
      EXPECT_NE(std::string(error.GetDescription()).find("CUDA is not available"), std::string::npos);
    }
  }
}

TEST(KDBrainExtractionTorchModel, CudaGivesTheCpuResult)
{
  if (!KDBrainExtractionTorchModel::IsCudaAvailable())
  {
    GTEST_SKIP() << "no CUDA device";
  }
  auto       model = MakeTinyModel(RoleEnum::Student);
  const auto onCpu = PredictRamp(model, { { 24, 20, 16 } });
  model->SetDevice("cuda");
  const auto onCuda = PredictRamp(model, { { 24, 20, 16 } });
  ASSERT_EQ(onCpu.size(), onCuda.size());
  for (std::size_t i = 0; i < onCpu.size(); ++i)
  {
    ASSERT_NEAR(onCpu[i], onCuda[i], 1e-4);
  }
}
