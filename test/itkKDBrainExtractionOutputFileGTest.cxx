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
#include "itkKDBrainExtractionOutputFile.h"
#include "itkImage.h"
#include "itksys/Directory.hxx"
#include "itksys/SystemTools.hxx"

#include <fstream>
#include <unistd.h>
#include <set>

namespace
{
using itk::KDBrainExtractionOutputFile;

std::string
OutputFolder()
{
  const std::string directory = itksys::SystemTools::GetCurrentWorkingDirectory() + "/gtest-output-files";
  itksys::SystemTools::MakeDirectory(directory);
  return directory;
}

std::set<std::string>
Listing(const std::string & folder)
{
  itksys::Directory directory;
  directory.Load(folder);
  std::set<std::string> names;
  for (unsigned long i = 0; i < directory.GetNumberOfFiles(); ++i)
  {
    const std::string name = directory.GetFile(i);
    if (name != "." && name != "..")
    {
      names.insert(name);
    }
  }
  return names;
}

using SmallImageType = itk::Image<float, 3>;

SmallImageType::Pointer
SmallImage()
{
  auto image = SmallImageType::New();
  image->SetRegions(SmallImageType::SizeType{ { 10, 9, 8 } });
  SmallImageType::SpacingType spacing;
  spacing[0] = 1.0;
  spacing[1] = 1.0;
  spacing[2] = 2.0;
  image->SetSpacing(spacing);
  image->Allocate();
  float value = 0.0f;
  for (auto * voxel = image->GetBufferPointer(); voxel != image->GetBufferPointer() + 720; ++voxel)
  {
    *voxel = value++;
  }
  return image;
}
} // namespace

TEST(KDBrainExtractionOutputFile, TemporaryNamesAreHiddenUniqueAndKeepTheExtension)
{
  const std::string first = KDBrainExtractionOutputFile::TemporaryName("/some/folder/head_mask.nii.gz");
  const std::string second = KDBrainExtractionOutputFile::TemporaryName("/some/folder/head_mask.nii.gz");
  EXPECT_NE(first, second);
  EXPECT_EQ(first.rfind("/some/folder/.head_mask.kdbet-", 0), 0u) << first;
  EXPECT_EQ(first.substr(first.size() - 7), ".nii.gz");
}

TEST(KDBrainExtractionOutputFile, StagedFilesAreRemovedOnRequestAndPlacedOnesAreNot)
{
  const std::string folder = OutputFolder() + "/staged";
  itksys::SystemTools::RemoveADirectory(folder);
  itksys::SystemTools::MakeDirectory(folder);
  const auto        image = SmallImage();
  const std::string placed = KDBrainExtractionOutputFile::StageImage(image.GetPointer(), folder + "/placed.nii.gz");
  KDBrainExtractionOutputFile::MoveIntoPlace(placed, folder + "/placed.nii.gz");
  const std::string pending = KDBrainExtractionOutputFile::StageImage(image.GetPointer(), folder + "/pending.nii.gz");
  const std::string text = KDBrainExtractionOutputFile::StageBytes("a,b\n", folder + "/summary.csv", "the summary");
  EXPECT_TRUE(itksys::SystemTools::FileExists(pending));
  EXPECT_TRUE(itksys::SystemTools::FileExists(text));
  // What a SIGINT/SIGTERM handler calls.
  KDBrainExtractionOutputFile::RemoveStagedFiles();
  EXPECT_EQ(Listing(folder), std::set<std::string>{ "placed.nii.gz" });
}

TEST(KDBrainExtractionOutputFile, TemporariesOfAKilledProcessAreRemovedAndNothingElse)
{
  const std::string folder = OutputFolder() + "/killed";
  itksys::SystemTools::RemoveADirectory(folder);
  itksys::SystemTools::MakeDirectory(folder);
  for (const char * name : { ".head_mask.kdbet-4242-0.nii.gz", // the killed process's
                             ".head_mask.kdbet-4242-17.nii.gz",
                             ".head_mask.kdbet-42420-0.nii.gz", // another process's
                             ".head_mask.kdbet-4242-x.nii.gz",  // not a temporary name
                             ".head_mask.kdbet-4242-0.nii",     // another output's
                             ".head_brain.kdbet-4242-0.nii.gz",
                             "head_mask.nii.gz" })
  {
    std::ofstream(folder + "/" + name) << "x";
  }
  KDBrainExtractionOutputFile::RemoveTemporariesOf(folder + "/head_mask.nii.gz", 4242);
  EXPECT_EQ(Listing(folder),
            (std::set<std::string>{ ".head_mask.kdbet-42420-0.nii.gz",
                                    ".head_mask.kdbet-4242-x.nii.gz",
                                    ".head_mask.kdbet-4242-0.nii",
                                    ".head_brain.kdbet-4242-0.nii.gz",
                                    "head_mask.nii.gz" }));
  // The name a process makes is the name it removes.
  const std::string made = KDBrainExtractionOutputFile::TemporaryName(folder + "/head_mask.nii.gz");
  std::ofstream(made) << "x";
  KDBrainExtractionOutputFile::RemoveTemporariesOf(folder + "/head_mask.nii.gz", ::getpid());
  EXPECT_FALSE(itksys::SystemTools::FileExists(made));
}

TEST(KDBrainExtractionOutputFile, WrittenImagesReadBackEqual)
{
  const std::string folder = OutputFolder();
  const auto        image = SmallImage();
  for (const char * name : { "/small.nii.gz", "/small.nii", "/small.mha", "/small.nrrd" })
  {
    KDBrainExtractionOutputFile::WriteImage(image.GetPointer(), folder + name);
    EXPECT_NO_THROW(KDBrainExtractionOutputFile::VerifyWrittenImage(image.GetPointer(), folder + name)) << name;
  }
  // A file cut short, as a full disk leaves it, is not taken for written.
  std::ifstream     source(folder + "/small.nii", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(source)), std::istreambuf_iterator<char>());
  std::ofstream(folder + "/cut.nii", std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  EXPECT_THROW(KDBrainExtractionOutputFile::VerifyWrittenImage(image.GetPointer(), folder + "/cut.nii"),
               itk::ExceptionObject);
  // Another image under the name is not this one.
  auto other = SmallImage();
  other->GetBufferPointer()[5] = -1.0f;
  EXPECT_THROW(KDBrainExtractionOutputFile::VerifyWrittenImage(other.GetPointer(), folder + "/small.mha"),
               itk::ExceptionObject);
}

TEST(KDBrainExtractionOutputFile, TwoFileFormatsAndMissingFoldersAreRefusedBeforeWriting)
{
  const std::string folder = OutputFolder();
  for (const char * name : { "/pair.hdr", "/pair.img", "/pair.mhd", "/pair.nhdr" })
  {
    EXPECT_THROW(KDBrainExtractionOutputFile::CheckOutputName(folder + name), itk::ExceptionObject) << name;
  }
  EXPECT_THROW(KDBrainExtractionOutputFile::CheckOutputName(folder + "/no/such/folder/x.nii.gz"), itk::ExceptionObject);
  EXPECT_NO_THROW(KDBrainExtractionOutputFile::CheckOutputName(folder + "/x.nii.gz"));
}
