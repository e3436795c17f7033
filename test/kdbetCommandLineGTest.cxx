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
// kdbet end to end: every kind of bad input gets a one-line error naming the
// file and the problem, a non-zero exit status, and no output file; in batch
// mode a bad input fails alone. The bad files are made here.
#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkKDBrainExtractionTorchModel.h"
#include "itkRGBPixel.h"
#include "itksys/Directory.hxx"
#include "itksys/SystemTools.hxx"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

namespace
{
using ImageType = itk::Image<float, 3>;

struct CommandResult
{
  int         ExitStatus{ -1 };
  std::string Output;
};

/** Runs kdbet with \a arguments (already quoted), stdout and stderr together. */
CommandResult
RunKdbet(const std::string & arguments)
{
  const std::string command = std::string("'") + KDBET_EXECUTABLE + "' " + arguments + " 2>&1";
  CommandResult     result;
  FILE *            pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr)
  {
    return result;
  }
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe))
  {
    result.Output += buffer;
  }
  const int status = ::pclose(pipe);
  result.ExitStatus = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

/** A fresh folder per test: CTest runs the tests in parallel processes. */
std::string
Folder()
{
  const std::string path = std::string(KDBET_TEST_OUTPUT_DIR) + "/kdbetCommandLine/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  static std::set<std::string> created;
  if (created.insert(path).second)
  {
    itksys::SystemTools::RemoveADirectory(path);
    itksys::SystemTools::MakeDirectory(path);
  }
  return path;
}

/** A small synthetic head: a bright ellipsoid in a dimmer shell, 2 mm voxels. */
ImageType::Pointer
MakeHead(unsigned int size = 40)
{
  auto image = ImageType::New();
  image->SetRegions(ImageType::SizeType{ { size, size, size } });
  image->SetSpacing(2.0);
  image->Allocate();
  for (unsigned int z = 0; z < size; ++z)
  {
    for (unsigned int y = 0; y < size; ++y)
    {
      for (unsigned int x = 0; x < size; ++x)
      {
        const double r =
          std::sqrt(std::pow(x - size / 2.0, 2) + std::pow(y - size / 2.0, 2) + std::pow(z - size / 2.0, 2));
        image->SetPixel({ { x, y, z } }, r < size * 0.3 ? 300.0f + (x % 3) : (r < size * 0.4 ? 100.0f : 0.0f));
      }
    }
  }
  return image;
}

template <typename TImage>
std::string
Write(const TImage * image, const std::string & name)
{
  const std::string file = Folder() + "/" + name;
  auto              writer = itk::ImageFileWriter<TImage>::New();
  writer->SetInput(image);
  writer->SetFileName(file);
  writer->Update();
  return file;
}

std::string
WriteText(const std::string & name, const std::string & text)
{
  const std::string file = Folder() + "/" + name;
  std::ofstream(file, std::ios::binary) << text;
  return file;
}

/** Overwrites bytes of a file, to forge a NIfTI header field. */
template <typename T>
void
Patch(const std::string & file, std::streamoff offset, T value)
{
  std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
  stream.seekp(offset);
  stream.write(reinterpret_cast<const char *>(&value), sizeof(value));
}

/** kdbet extract on \a input fails with exit status 1, a single "kdbet: error:"
 * line matching \a problem, and writes neither the mask nor a temporary file. */
void
ExpectRefused(const std::string & input, const std::string & problem, const std::string & extra = "")
{
  const std::string mask = Folder() + "/never-written_mask.nii.gz";
  const auto        result = RunKdbet("extract -i '" + input + "' -m '" + mask + "' --threads 1 " + extra);
  EXPECT_EQ(result.ExitStatus, 1) << result.Output;
  EXPECT_TRUE(std::regex_search(result.Output, std::regex("^kdbet: error: .*" + problem))) << result.Output;
  EXPECT_EQ(std::count(result.Output.begin(), result.Output.end(), '\n'), 1) << result.Output;
  EXPECT_FALSE(itksys::SystemTools::FileExists(mask));
  itksys::Directory directory;
  directory.Load(Folder());
  for (unsigned long i = 0; i < directory.GetNumberOfFiles(); ++i)
  {
    EXPECT_EQ(std::string(directory.GetFile(i)).find(".kdbet-"), std::string::npos) << directory.GetFile(i);
  }
}
} // namespace

TEST(kdbetCommandLine, MissingFile)
{
  ExpectRefused(Folder() + "/no-such-head.nii.gz", "no-such-head.nii.gz: no such file");
}

TEST(kdbetCommandLine, NotAnImage)
{
  ExpectRefused(WriteText("notes.txt", "not an image\n"), "notes.txt: not an image in a format ITK can read");
}

TEST(kdbetCommandLine, CorruptNifti)
{
  std::string garbage(4000, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i)
  {
    garbage[i] = static_cast<char>((i * 7919) % 251);
  }
  ExpectRefused(WriteText("corrupt.nii", garbage), "corrupt.nii: ");
}

TEST(kdbetCommandLine, TruncatedNifti)
{
  const std::string file = Write(MakeHead().GetPointer(), "truncated.nii");
  ASSERT_EQ(::truncate(file.c_str(), 352 + 40 * 40 * 10 * 4), 0);
  ExpectRefused(file, "truncated.nii: truncated file");
  // The same, compressed: the gzip stream ends early.
  const std::string compressed = Write(MakeHead().GetPointer(), "truncated.nii.gz");
  ASSERT_EQ(::truncate(compressed.c_str(), itksys::SystemTools::FileLength(compressed) / 2), 0);
  ExpectRefused(compressed, "truncated.nii.gz: ");
}

TEST(kdbetCommandLine, TwoDimensional)
{
  using SliceType = itk::Image<float, 2>;
  auto slice = SliceType::New();
  slice->SetRegions(SliceType::SizeType{ { 64, 64 } });
  slice->Allocate();
  slice->FillBuffer(1.0f);
  ExpectRefused(Write(slice.GetPointer(), "slice.nii.gz"), "slice.nii.gz: a 2D image");
}

TEST(kdbetCommandLine, FourDimensionalSeveralVolumes)
{
  using SeriesType = itk::Image<float, 4>;
  auto series = SeriesType::New();
  series->SetRegions(SeriesType::SizeType{ { 16, 16, 16, 3 } });
  series->Allocate();
  series->FillBuffer(1.0f);
  ExpectRefused(Write(series.GetPointer(), "series.nii.gz"), "series.nii.gz: a 4D image with 3 volumes");
}

TEST(kdbetCommandLine, VectorPixels)
{
  using ColourType = itk::Image<itk::RGBPixel<unsigned char>, 3>;
  auto colour = ColourType::New();
  colour->SetRegions(ColourType::SizeType{ { 16, 16, 16 } });
  colour->Allocate();
  colour->FillBuffer(itk::RGBPixel<unsigned char>(static_cast<unsigned char>(9)));
  ExpectRefused(Write(colour.GetPointer(), "colour.nii.gz"),
                "colour.nii.gz: RGB/RGBA voxels; a scalar image is needed");
}

TEST(kdbetCommandLine, AllZeroAndConstant)
{
  auto image = MakeHead();
  image->FillBuffer(0.0f);
  ExpectRefused(Write(image.GetPointer(), "zero.nii.gz"), "zero.nii.gz: the image is constant");
  image->FillBuffer(42.0f);
  ExpectRefused(Write(image.GetPointer(), "constant.nii.gz"), "constant.nii.gz: the image is constant");
}

TEST(kdbetCommandLine, NotANumberAndInfinity)
{
  auto image = MakeHead();
  image->SetPixel({ { 3, 4, 5 } }, std::nanf(""));
  ExpectRefused(Write(image.GetPointer(), "nan.nii.gz"), "nan.nii.gz: 1 voxels are NaN or infinite");
  image = MakeHead();
  image->SetPixel({ { 3, 4, 5 } }, std::numeric_limits<float>::infinity());
  ExpectRefused(Write(image.GetPointer(), "inf.nii.gz"), "inf.nii.gz: 1 voxels are NaN or infinite");
}

TEST(kdbetCommandLine, AbsurdSizes)
{
  auto voxel = ImageType::New();
  voxel->SetRegions(ImageType::SizeType{ { 1, 1, 1 } });
  voxel->Allocate();
  voxel->FillBuffer(1.0f);
  ExpectRefused(Write(voxel.GetPointer(), "voxel.nii"), "voxel.nii: 1x1x1 voxels, not a head volume");
  // A header claiming 4096^3 voxels (dim[1..3] at byte 42) over a tiny file.
  const std::string huge = Write(MakeHead(8).GetPointer(), "huge.nii");
  for (int axis = 0; axis < 3; ++axis)
  {
    Patch<int16_t>(huge, 42 + 2 * axis, 4096);
  }
  ExpectRefused(huge, "huge.nii: the header claims 4096x4096x4096 voxels");
}

TEST(kdbetCommandLine, ZeroAndNegativeSpacing)
{
  // pixdim[1] is at byte 80 of a NIfTI-1 header.
  const std::string zero = Write(MakeHead().GetPointer(), "zero-spacing.nii");
  Patch<float>(zero, 80, 0.0f);
  ExpectRefused(zero, "zero-spacing.nii: invalid voxel spacing 0 x 2 x 2 mm");
  Write(MakeHead().GetPointer(), "negative-spacing.nii");
  Patch<float>(Folder() + "/negative-spacing.nii", 84, -2.0f);
  ExpectRefused(Folder() + "/negative-spacing.nii", "negative-spacing.nii: invalid voxel spacing 2 x -2 x 2 mm");
}

TEST(kdbetCommandLine, UnwritableOutput)
{
  const std::string head = Write(MakeHead().GetPointer(), "head.nii.gz");
  auto              result = RunKdbet("extract -i '" + head + "' -m '" + Folder() + "/no-such-folder/mask.nii.gz'");
  EXPECT_EQ(result.ExitStatus, 1);
  EXPECT_NE(result.Output.find("the output folder"), std::string::npos) << result.Output;
  EXPECT_NE(result.Output.find("does not exist"), std::string::npos) << result.Output;
  // A "folder" that is a file.
  result = RunKdbet("extract -i '" + head + "' -m '" + head + "/mask.nii.gz'");
  EXPECT_EQ(result.ExitStatus, 1) << result.Output;
  result = RunKdbet("extract -i '" + head + "' -m '" + Folder() + "/mask.unknown-format'");
  EXPECT_EQ(result.ExitStatus, 1);
  EXPECT_NE(result.Output.find("no image format for the extension"), std::string::npos) << result.Output;
}

TEST(kdbetCommandLine, BadModels)
{
  const std::string head = Write(MakeHead().GetPointer(), "head-for-models.nii.gz");
  ExpectRefused(head, "no-such-model.kdbm: no such file", "--model '" + Folder() + "/no-such-model.kdbm'");
  ExpectRefused(head,
                "corrupt-model.kdbm: not a KDBrainExtraction model file",
                "--model '" + WriteText("corrupt-model.kdbm", "garbage garbage garbage") + "'");
  ExpectRefused(head,
                "kdbet_teacher.kdbm: a teacher model, but a student model is needed",
                std::string("--model '") + KDBET_MODEL_DIR + "/kdbet_teacher.kdbm'");
  ExpectRefused(head,
                "kdbet_student.kdbm: a student model, but a refiner model is needed",
                std::string("--refiner-model '") + KDBET_MODEL_DIR + "/kdbet_student.kdbm'");
}

TEST(kdbetCommandLine, FineStageRunsOnFinerInputsWhenAskedFor)
{
  // 1 mm voxels: finer than the student's 2 mm grid.
  auto head = MakeHead(80);
  head->SetSpacing(1.0);
  const std::string input = Write(head.GetPointer(), "fine-head.nii.gz");
  const auto refined = RunKdbet("extract -i '" + input + "' -m '" + Folder() + "/refined.nii.gz' --timings --refine");
  EXPECT_EQ(refined.ExitStatus, 0) << refined.Output;
  EXPECT_NE(refined.Output.find(" refinement "), std::string::npos) << refined.Output;
  const auto coarse = RunKdbet("extract -i '" + input + "' -m '" + Folder() + "/coarse.nii.gz' --timings");
  EXPECT_EQ(coarse.ExitStatus, 0) << coarse.Output;
  EXPECT_EQ(coarse.Output.find(" refinement "), std::string::npos) << coarse.Output;
  // A 2 mm input has nothing to refine.
  const std::string coarseInput = Write(MakeHead().GetPointer(), "coarse-head.nii.gz");
  const auto plain = RunKdbet("extract -i '" + coarseInput + "' -m '" + Folder() + "/plain.nii.gz' --timings --refine");
  EXPECT_EQ(plain.ExitStatus, 0) << plain.Output;
  EXPECT_EQ(plain.Output.find(" refinement "), std::string::npos) << plain.Output;
}

TEST(kdbetCommandLine, AverageOfModels)
{
  const std::string student = std::string(KDBET_MODEL_DIR) + "/kdbet_student.kdbm";
  const std::string soup = Folder() + "/soup.kdbm";
  auto              result = RunKdbet("average --output '" + soup + "' '" + student + "' '" + student + "'");
  EXPECT_EQ(result.ExitStatus, 0) << result.Output;
  const std::string studentInfo = RunKdbet("info '" + student + "'").Output;
  const std::string checksumLabel = "checksum (FNV-1a 64): ";
  const auto        checksumAt = studentInfo.find(checksumLabel);
  ASSERT_NE(checksumAt, std::string::npos) << studentInfo;
  const std::string checksum = studentInfo.substr(checksumAt + checksumLabel.size(), 16);
  result = RunKdbet("info '" + soup + "'");
  EXPECT_NE(result.Output.find("average.models: " + checksum + "," + checksum), std::string::npos) << result.Output;

  const std::string teacher = std::string(KDBET_MODEL_DIR) + "/kdbet_teacher.kdbm";
  result = RunKdbet("average --output '" + Folder() + "/mixed.kdbm' '" + student + "' '" + teacher + "'");
  EXPECT_EQ(result.ExitStatus, 1);
  EXPECT_NE(result.Output.find("kdbet_teacher.kdbm: cannot be averaged with"), std::string::npos) << result.Output;
  EXPECT_FALSE(itksys::SystemTools::FileExists(Folder() + "/mixed.kdbm"));
}

TEST(kdbetCommandLine, CudaRequestedButAbsent)
{
  if (itk::KDBrainExtractionTorchModel::IsCudaAvailable())
  {
    GTEST_SKIP() << "this machine has CUDA";
  }
  ExpectRefused(Write(MakeHead().GetPointer(), "head-for-cuda.nii.gz"), "cuda", "--device cuda");
}

TEST(kdbetCommandLine, BatchBadInputFailsAlone)
{
  const std::string inputs = Folder() + "/cohort";
  const std::string outputs = Folder() + "/cohort-out";
  itksys::SystemTools::MakeDirectory(inputs);
  auto head = MakeHead();
  Write(head.GetPointer(), "cohort/a.nii.gz");
  Write(head.GetPointer(), "cohort/c.nrrd");
  head->FillBuffer(0.0f);
  Write(head.GetPointer(), "cohort/b.nii.gz");
  WriteText("cohort/list.txt", "# one more\nc.nrrd\n");
  const auto result = RunKdbet("extract -i '" + inputs + "/a.nii.gz' -i '" + inputs + "/b.nii.gz' --list '" + inputs +
                               "/list.txt' --output-dir '" + outputs + "' --write mask,qc --summary '" + outputs +
                               "/summary.json' --threads 1 --border 2.5 --mirror");
  EXPECT_EQ(result.ExitStatus, 1) << result.Output;
  EXPECT_NE(result.Output.find("2 of 3 volumes done, 1 failed"), std::string::npos) << result.Output;
  EXPECT_TRUE(itksys::SystemTools::FileExists(outputs + "/a_mask.nii.gz"));
  EXPECT_TRUE(itksys::SystemTools::FileExists(outputs + "/a_qc.png"));
  EXPECT_TRUE(itksys::SystemTools::FileExists(outputs + "/c_mask.nii.gz"));
  EXPECT_FALSE(itksys::SystemTools::FileExists(outputs + "/b_mask.nii.gz"));
  EXPECT_FALSE(itksys::SystemTools::FileExists(outputs + "/b_qc.png"));
  std::ifstream stream(outputs + "/summary.json");
  const auto    summary = nlohmann::json::parse(stream);
  ASSERT_EQ(summary.size(), 3u);
  EXPECT_EQ(summary[1]["status"], "failed");
  EXPECT_NE(summary[1]["message"].get<std::string>().find("b.nii.gz: the image is constant"), std::string::npos);
  EXPECT_TRUE(summary[1]["brain_ml"].is_null());
  EXPECT_EQ(summary[0]["status"], "ok");
  EXPECT_EQ(summary[0]["message"], "");
  EXPECT_GT(summary[0]["brain_ml"].get<double>(), 0.0);
  for (const auto & row : summary) // Every row records the model and settings that made it.
  {
    EXPECT_TRUE(std::regex_match(row["model"].get<std::string>(), std::regex("[0-9a-f]{16}"))) << row;
    EXPECT_EQ(row["teacher_model"], "");
    EXPECT_EQ(row["refiner_model"], "");
    EXPECT_EQ(row["threshold"], 0.5);
    EXPECT_EQ(row["border_mm"], 2.5);
    EXPECT_EQ(row["mirror"], true);
  }
}

TEST(kdbetCommandLine, TeacherOnlyWritesTheBrainImageAndNoBrainVolume)
{
  const std::string input = Write(MakeHead().GetPointer(), "teacher-only.nii.gz");
  const std::string output = Folder() + "/teacher-only_brain.nii.gz";
  const auto result = RunKdbet("extract -i '" + input + "' --teacher-brain '" + output + "' --threads 1 --mirror");
  EXPECT_EQ(result.ExitStatus, 0) << result.Output;
  // Without the student there is no mask, so no brain volume to report.
  EXPECT_EQ(result.Output.find("brain volume"), std::string::npos) << result.Output;
  EXPECT_NE(result.Output.find("device: "), std::string::npos) << result.Output;
  const auto brain = itk::ReadImage<ImageType>(output);
  EXPECT_EQ(brain->GetLargestPossibleRegion(), MakeHead()->GetLargestPossibleRegion());
  EXPECT_EQ(brain->GetSpacing(), MakeHead()->GetSpacing());
}

TEST(kdbetCommandLine, UsageErrors)
{
  EXPECT_EQ(RunKdbet("extract").ExitStatus, 2);
  EXPECT_EQ(RunKdbet("extract -i a.nii.gz --no-such-option 1").ExitStatus, 2);
  EXPECT_EQ(RunKdbet("extract -i a.nii.gz -i b.nii.gz").ExitStatus, 2);
  EXPECT_EQ(RunKdbet("extract -i a.nii.gz -i b.nii.gz --output-dir " + Folder() + " --write skull").ExitStatus, 2);
  EXPECT_EQ(RunKdbet("extract -i a.nii.gz --threshold 2").ExitStatus, 2);
  EXPECT_EQ(RunKdbet("average --output soup.kdbm one.kdbm").ExitStatus, 2);
  EXPECT_EQ(RunKdbet("average one.kdbm two.kdbm").ExitStatus, 2);
  EXPECT_EQ(RunKdbet("average --output soup.kdbm one.kdbm two.kdbm --no-such-option").ExitStatus, 2);
  {
    const auto result =
      RunKdbet("train --manifest no-such.csv --output m.kdbm --label-maps " + Folder() + "/no-such-labels.nii.gz");
    EXPECT_EQ(result.ExitStatus, 2) << result.Output;
    EXPECT_NE(result.Output.find("no-such-labels.nii.gz: no such label map"), std::string::npos) << result.Output;
  }
  for (const char * border : { "--border 51", "--border -60", "--border nan", "--border 2mm" })
  {
    const auto result = RunKdbet(std::string("extract -i a.nii.gz ") + border);
    EXPECT_EQ(result.ExitStatus, 2) << border;
    EXPECT_NE(result.Output.find("--border"), std::string::npos) << result.Output;
  }
}
