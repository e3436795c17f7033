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
#include "itkKDBrainExtractionOutputFile.h"

#include "itkImageIOFactory.h"
#include "itkKDBrainExtractionInputFile.h"
#include "itksys/SystemInformation.hxx"
#include "itksys/Directory.hxx"
#include "itksys/SystemTools.hxx"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace itk
{
namespace
{
/** TemporaryName's folder part, and its file name up to the process id. */
std::pair<std::string, std::string>
TemporaryNamePrefix(const std::string & fileName, long long processId)
{
  const std::string directory = itksys::SystemTools::GetFilenamePath(fileName);
  const std::string name = itksys::SystemTools::GetFilenameName(fileName);
  const std::string extension = KDBrainExtractionInputFile::ImageExtension(fileName);
  std::string       stem = name.substr(0, name.size() - extension.size());
  // A legal output name near the 255-byte limit must not give an illegal
  // temporary name: the stem is shortened (at a UTF-8 character boundary) to
  // leave room for the dot, ".kdbet-", the process id, "-" and a counter.
  const std::size_t room = 255 - std::min<std::size_t>(255, 1 + 7 + 20 + 1 + 10 + extension.size());
  if (stem.size() > room)
  {
    std::size_t cut = room;
    while (cut > 0 && (static_cast<unsigned char>(stem[cut]) & 0xC0) == 0x80)
    {
      --cut;
    }
    stem.resize(cut);
  }
  return { directory.empty() ? std::string(".") : directory, "." + stem + ".kdbet-" + std::to_string(processId) + "-" };
}
} // namespace

std::string
KDBrainExtractionOutputFile::TemporaryName(const std::string & fileName)
{
  // Unique across processes (the process id) and across the calls and
  // threads of one process (a counter).
  static std::atomic<unsigned> counter{ 0 };
  const auto                   prefix = TemporaryNamePrefix(fileName, itksys::SystemInformation().GetProcessId());
  const std::string            directory = itksys::SystemTools::GetFilenamePath(fileName);
  return (directory.empty() ? std::string() : directory + "/") + prefix.second + std::to_string(counter++) +
         KDBrainExtractionInputFile::ImageExtension(fileName);
}

void
KDBrainExtractionOutputFile::RemoveTemporariesOf(const std::string & fileName, long long processId)
{
  const auto        prefix = TemporaryNamePrefix(fileName, processId);
  const std::string extension = KDBrainExtractionInputFile::ImageExtension(fileName);
  itksys::Directory directory;
  if (!directory.Load(prefix.first))
  {
    return;
  }
  for (unsigned long i = 0; i < directory.GetNumberOfFiles(); ++i)
  {
    const std::string name = directory.GetFile(i);
    if (name.size() > prefix.second.size() + extension.size() && name.rfind(prefix.second, 0) == 0 &&
        name.compare(name.size() - extension.size(), extension.size(), extension) == 0 &&
        name.find_first_not_of("0123456789", prefix.second.size()) == name.size() - extension.size())
    {
      std::remove((prefix.first + "/" + name).c_str());
    }
  }
}

namespace
{
/** Staged files, readable from a signal handler: fixed slots, each claimed
 * and released through an atomic flag, names copied in before the flag is
 * set. */
constexpr std::size_t NumberOfStagedSlots = 64;
constexpr std::size_t StagedNameLength = 4096;
struct StagedSlot
{
  std::atomic<bool> Used{ false };
  char              Name[StagedNameLength];
};
StagedSlot StagedSlots[NumberOfStagedSlots];
} // namespace

void
KDBrainExtractionOutputFile::Register(const std::string & temporary)
{
  if (temporary.size() >= StagedNameLength)
  {
    return; // not removable on a signal; removed normally on errors
  }
  for (auto & slot : StagedSlots)
  {
    bool expected = false;
    if (!slot.Used.load() && slot.Used.compare_exchange_strong(expected, true))
    {
      // Claimed empty first (Name[0] = 0), so a handler never reads a half-copied name.
      slot.Name[0] = '\0';
      std::atomic_signal_fence(std::memory_order_seq_cst);
      std::memcpy(slot.Name + 1, temporary.c_str() + 1, temporary.size());
      std::atomic_signal_fence(std::memory_order_seq_cst);
      slot.Name[0] = temporary[0];
      return;
    }
  }
}

void
KDBrainExtractionOutputFile::Unregister(const std::string & temporary)
{
  for (auto & slot : StagedSlots)
  {
    if (slot.Used.load() && slot.Name[0] != '\0' && temporary == slot.Name)
    {
      slot.Name[0] = '\0';
      slot.Used.store(false);
      return;
    }
  }
}

void
KDBrainExtractionOutputFile::RemoveStagedFiles()
{
  for (auto & slot : StagedSlots)
  {
    if (slot.Used.load() && slot.Name[0] != '\0')
    {
      std::remove(slot.Name); // unlink(2): async-signal-safe
    }
  }
}

void
KDBrainExtractionOutputFile::Discard(const std::string & temporary)
{
  std::remove(temporary.c_str());
  Unregister(temporary);
}

void
KDBrainExtractionOutputFile::MoveIntoPlace(const std::string & temporary, const std::string & fileName)
{
  if (std::rename(temporary.c_str(), fileName.c_str()) != 0)
  {
    Discard(temporary);
    itkGenericExceptionMacro(<< fileName << ": cannot move the written file into place");
  }
  Unregister(temporary);
}

void
KDBrainExtractionOutputFile::CheckOutputName(const std::string & fileName, bool isImage)
{
  std::string directory = itksys::SystemTools::GetFilenamePath(fileName);
  if (directory.empty())
  {
    directory = ".";
  }
  if (!itksys::SystemTools::FileIsDirectory(directory))
  {
    itkGenericExceptionMacro(<< fileName << ": the output folder " << directory << " does not exist");
  }
  if (!itksys::SystemTools::TestFileAccess(directory, itksys::TEST_FILE_WRITE))
  {
    itkGenericExceptionMacro(<< fileName << ": the output folder " << directory << " is not writable");
  }
  if (!isImage)
  {
    return;
  }
  const std::string extension = KDBrainExtractionInputFile::ImageExtension(fileName);
  const std::string lower = itksys::SystemTools::LowerCase(extension);
  if (lower == ".hdr" || lower == ".img" || lower == ".img.gz" || lower == ".mhd" || lower == ".nhdr")
  {
    itkGenericExceptionMacro(<< fileName << ": a two-file format (its data file could not be replaced together with "
                             << "it); use .nii.gz, .nii, .mha or .nrrd");
  }
  auto io = ImageIOFactory::CreateImageIO(fileName.c_str(), ImageIOFactory::IOFileModeEnum::WriteMode);
  if (io.IsNull())
  {
    itkGenericExceptionMacro(<< fileName << ": no image format for the extension '" << extension << "'");
  }
}

std::string
KDBrainExtractionOutputFile::StageBytes(const std::string & bytes, const std::string & fileName,
                                        const std::string & what)
{
  CheckOutputName(fileName, false);
  const std::string temporary = TemporaryName(fileName);
  Register(temporary);
  std::ofstream file(temporary, std::ios::binary);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close(); // a full disk can show only when the last block is written
  if (file.fail())
  {
    Discard(temporary);
    itkGenericExceptionMacro(<< fileName << ": cannot write " << what << " (disk full or over quota?)");
  }
  return temporary;
}

void
KDBrainExtractionOutputFile::WriteBytes(const std::string & bytes, const std::string & fileName,
                                        const std::string & what)
{
  MoveIntoPlace(StageBytes(bytes, fileName, what), fileName);
}
} // end namespace itk
