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
// kdbet extract's and kdbet bids' shared machinery (kdbetCohort.h).

#include "kdbetCohort.h"

#include "itkCommand.h"
#include "itkKDStudentMaskFilter.h"
#include "itkKDTeacherImageFilter.h"
#include "kdbetQualityControl.h"

#include <cmath>
#include <fstream>
#include <iomanip>
#include <new>
#include <iostream>
#include <map>

namespace kdbet
{
namespace
{
std::string
FormatDuration(double seconds)
{
  const auto         total = static_cast<long>(std::max(0.0, seconds));
  std::ostringstream text;
  text << std::setfill('0') << std::setw(2) << total / 3600 << ":" << std::setw(2) << (total / 60) % 60 << ":"
       << std::setw(2) << total % 60;
  return text.str();
}

template <typename TFilter>
void
AddStageTimes(JobResult & result, const TFilter * filter, double filterSeconds, const std::string & prefix)
{
  const auto & stages = filter->GetStageTimes();
  result.Stages[prefix + "preprocess"] = stages.Preprocessing;
  result.Stages[prefix + "network"] = stages.Network;
  if (stages.Refinement > 0.0)
  {
    result.Stages[prefix + "refinement"] = stages.Refinement;
  }
  result.Stages[prefix + "map_back"] = stages.MapBack;
  result.Stages[prefix + "postprocess"] =
    std::max(0.0, filterSeconds - stages.Preprocessing - stages.Network - stages.Refinement - stages.MapBack);
}

std::string
CsvField(const std::string & text)
{
  if (text.find_first_of(",\"\n\r") == std::string::npos)
  {
    return text;
  }
  std::string quoted = "\"";
  for (const char c : text)
  {
    quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  }
  return quoted + "\"";
}

/** A summary value as a CSV field: numbers with 6 significant digits, null
 * empty, booleans 1/0. */
std::string
CsvValue(const nlohmann::ordered_json & value)
{
  if (value.is_null())
  {
    return std::string();
  }
  if (value.is_boolean())
  {
    return value.get<bool>() ? "1" : "0";
  }
  if (value.is_number())
  {
    std::ostringstream number;
    number << std::setprecision(6) << value.get<double>();
    return number.str();
  }
  return CsvField(value.get<std::string>());
}

const char *
Status(const JobResult & result)
{
  return result.Skipped ? "skipped" : result.Succeeded ? "ok" : "failed";
}
} // namespace

const std::vector<std::string> OutputKinds{ "mask", "brain", "probability", "teacher-brain", "qc" };

std::string
InputStem(const std::string & input)
{
  const std::string name = itksys::SystemTools::GetFilenameName(input);
  return name.substr(0, name.size() - itk::KDBrainExtractionInputFile::ImageExtension(input).size());
}

bool
LooksLikeImage(const std::string & fileName)
{
  // Formats this build reads (no MGH/MGZ or DICOM: Debian's ITK lacks them).
  static const std::set<std::string> extensions{ ".nii.gz", ".nii", ".nrrd", ".nhdr",  ".mha",
                                                 ".mhd",    ".hdr", ".img",  ".img.gz" };
  const std::string                  name = itksys::SystemTools::GetFilenameName(fileName);
  return !name.empty() && name[0] != '.' &&
         extensions.count(itksys::SystemTools::LowerCase(itk::KDBrainExtractionInputFile::ImageExtension(fileName)));
}

ProgressDisplay::ProgressDisplay(std::size_t numberOfVolumes)
  : m_NumberOfVolumes(numberOfVolumes)
  , m_Terminal(isatty(STDERR_FILENO))
  , m_Start(Clock::now())
{}

ProgressDisplay::ProgressDisplay(std::function<void(const std::string & stage, double fraction)> forward)
  : m_NumberOfVolumes(1)
  , m_Terminal(false)
  , m_Start(Clock::now())
  , m_Forward(std::move(forward))
{}

void
ProgressDisplay::StartVolume(std::size_t index, const std::string & input, const char * stage)
{
  m_Index = index;
  m_Label = itksys::SystemTools::GetFilenameName(input);
  m_Stage = stage;
  Draw(0.0);
}

void
ProgressDisplay::Watch(itk::ProcessObject * filter, const char * stage)
{
  auto observer = itk::MemberCommand<ProgressDisplay>::New();
  observer->SetCallbackFunction(this, &ProgressDisplay::OnProgress);
  filter->AddObserver(itk::ProgressEvent(), observer);
  m_Stage = stage;
}

void
ProgressDisplay::FinishVolume(const JobResult & result)
{
  ++m_Done;
  std::ostringstream line;
  line << "kdbet: [" << m_Index + 1 << "/" << m_NumberOfVolumes << "] " << result.Input << ": ";
  if (result.Skipped)
  {
    line << "skipped, its outputs exist";
  }
  else if (result.Succeeded)
  {
    line << "ok, ";
    if (result.HasMask)
    {
      line << "brain " << std::fixed << std::setprecision(1) << result.BrainMillilitres << " ml, ";
    }
    line << std::fixed << std::setprecision(2) << result.Seconds << " s";
  }
  else
  {
    line << "failed: " << result.Message;
  }
  if (m_Terminal)
  {
    std::cerr << "\r\033[K";
  }
  std::cerr << line.str() << std::endl;
}

void
ProgressDisplay::Show(const std::string & stage, double fraction)
{
  m_Stage = stage;
  Draw(fraction);
}

void
ProgressDisplay::OnProgress(itk::Object * caller, const itk::EventObject &)
{
  const double fraction = static_cast<itk::ProcessObject *>(caller)->GetProgress();
  if (m_Forward)
  {
    m_Forward(m_Stage, fraction);
  }
  else
  {
    Draw(fraction);
  }
}

void
ProgressDisplay::Draw(double fraction)
{
  if (!m_Terminal)
  {
    return;
  }
  const int          width = 24;
  const int          filled = static_cast<int>(width * fraction);
  std::ostringstream line;
  line << "\r\033[K[" << m_Index + 1 << "/" << m_NumberOfVolumes << "] " << m_Label << " " << m_Stage << " ["
       << std::string(filled, '#') << std::string(width - filled, '.') << "] " << std::setw(3)
       << static_cast<int>(100 * fraction) << "%";
  if (m_NumberOfVolumes > 1)
  {
    const double overall = (m_Done + fraction) / m_NumberOfVolumes;
    line << " | all " << static_cast<int>(100 * overall) << "%";
    if (m_Done > 0)
    {
      const double perVolume = SecondsSince(m_Start) / (m_Done + fraction);
      line << " ETA " << FormatDuration(perVolume * (m_NumberOfVolumes - m_Done - fraction));
    }
  }
  std::cerr << line.str() << std::flush;
}

void
LoadModels(Models & models, bool needStudent, bool needTeacher, bool refine, const std::string & studentFile,
           const std::string & teacherFile, const std::string & refinerFile)
{
  if (models.Threads > ModelType::MaximumNumberOfThreads)
  {
    throw UsageError("--threads must be at most " + std::to_string(ModelType::MaximumNumberOfThreads));
  }
  if (!(models.Threshold > 0.0 && models.Threshold < 1.0))
  {
    throw UsageError("--threshold must be between 0 and 1");
  }
  if (!std::isfinite(models.Border) || std::abs(models.Border) > 50.0)
  {
    throw UsageError("--border must be a distance in mm between -50 and 50");
  }
  if (needStudent)
  {
    models.Student = LoadModel(studentFile, ModelType::RoleEnum::Student);
    models.Student->SetDevice(models.Device);
  }
  if (needStudent && (refine || !refinerFile.empty()))
  {
    models.Refiner = LoadModel(refinerFile, ModelType::RoleEnum::Refiner);
    models.Refiner->SetDevice(models.Device);
  }
  if (needTeacher)
  {
    models.Teacher = LoadModel(teacherFile, ModelType::RoleEnum::Teacher);
    models.Teacher->SetDevice(models.Device);
  }
}

namespace
{
/** One spelling per file: the real path of what exists, else that of its
 * folder with the name. */
std::string
CanonicalPath(const std::string & fileName)
{
  if (itksys::SystemTools::FileExists(fileName))
  {
    return itksys::SystemTools::GetRealPath(itksys::SystemTools::CollapseFullPath(fileName));
  }
  const std::string full = itksys::SystemTools::CollapseFullPath(fileName);
  return itksys::SystemTools::GetRealPath(itksys::SystemTools::GetFilenamePath(full)) + "/" +
         itksys::SystemTools::GetFilenameName(full);
}
} // namespace

void
CheckOutputsAreNew(const std::vector<Job> & jobs, const std::string & summaryFile)
{
  std::map<std::string, std::string> inputs; // canonical -> as given
  for (const auto & job : jobs)
  {
    inputs.emplace(CanonicalPath(job.Input), job.Input);
  }
  std::map<std::string, std::string> outputs;
  auto                               claim = [&inputs, &outputs](const std::string & file, const std::string & what) {
    const std::string canonical = CanonicalPath(file);
    const auto        input = inputs.find(canonical);
    if (input != inputs.end())
    {
      throw UsageError(file + ": the " + what + " would overwrite the input " + input->second);
    }
    const auto taken = outputs.emplace(canonical, what);
    if (!taken.second)
    {
      throw UsageError(file + ": named as two outputs (" + taken.first->second + " and " + what + ")");
    }
  };
  for (const auto & job : jobs)
  {
    for (const auto & output : job.Outputs)
    {
      claim(output.second, output.first + " of " + job.Input);
    }
  }
  if (!summaryFile.empty())
  {
    claim(summaryFile, "summary");
  }
}

void
RunAlone(JobResult & result, Clock::time_point start, const std::function<void()> & work)
{
  try
  {
    work();
    result.Succeeded = true;
  }
  catch (const itk::ExceptionObject & error)
  {
    result.Message = itk::KDBrainExtractionInputFile::DescribeError(error);
  }
  catch (const std::bad_alloc &)
  {
    result.Message = "out of memory";
  }
  catch (const std::exception & error)
  {
    result.Message = error.what();
  }
  result.Message = result.Message.substr(0, result.Message.find('\n'));
  // Every message names the volume, also those of LibTorch or the allocator.
  if (!result.Succeeded && result.Message.rfind(result.Input + ": ", 0) != 0)
  {
    result.Message = result.Input + ": " + result.Message;
  }
  result.Seconds = SecondsSince(start);
}

void
RunJob(const Job & job, const Models & models, ProgressDisplay & progress, JobResult & result)
{
  auto       start = Clock::now();
  const auto image = itk::KDBrainExtractionInputFile::ReadHeadImage(job.Input);
  result.Stages["read"] = SecondsSince(start);

  // Everything is computed before anything is written, so a failure leaves
  // no output of this volume behind.
  using StudentFilterType = itk::KDStudentMaskFilter<ImageType, MaskImageType>;
  using TeacherFilterType = itk::KDTeacherImageFilter<ImageType, ImageType>;
  StudentFilterType::Pointer student;
  TeacherFilterType::Pointer teacher;
  if (job.Outputs.count("mask") || job.Outputs.count("brain") || job.Outputs.count("probability") ||
      job.Outputs.count("qc"))
  {
    student = StudentFilterType::New();
    student->SetInput(image);
    student->SetModel(models.Student);
    student->SetDevice(models.Device);
    student->SetNumberOfTorchThreads(models.Threads);
    student->SetThreshold(models.Threshold);
    student->SetTestTimeMirroring(models.Mirror);
    student->SetMaskBorder(models.Border);
    student->SetBoundaryRefinement(models.Refiner.IsNotNull());
    student->SetRefinerModel(models.Refiner);
    progress.Watch(student, "student");
    start = Clock::now();
    student->Update();
    AddStageTimes(result, student.GetPointer(), SecondsSince(start), "");
    result.Device = models.Student->GetDevice();
    const MaskImageType * mask = student->GetMaskOutput();
    std::size_t           brainVoxels = 0;
    for (std::size_t i = 0; i < mask->GetBufferedRegion().GetNumberOfPixels(); ++i)
    {
      brainVoxels += mask->GetBufferPointer()[i];
    }
    const auto & spacing = image->GetSpacing();
    result.BrainMillilitres = brainVoxels * spacing[0] * spacing[1] * spacing[2] / 1000.0;
    result.HasMask = true;
    if (brainVoxels == 0)
    {
      std::cerr << "kdbet: warning: " << job.Input << ": no brain found (the mask is empty)" << std::endl;
    }
  }
  if (job.Outputs.count("teacher-brain"))
  {
    teacher = TeacherFilterType::New();
    teacher->SetInput(image);
    teacher->SetModel(models.Teacher);
    teacher->SetDevice(models.Device);
    teacher->SetNumberOfTorchThreads(models.Threads);
    teacher->SetTestTimeMirroring(models.Mirror);
    progress.Watch(teacher, "teacher");
    start = Clock::now();
    teacher->Update();
    AddStageTimes(result, teacher.GetPointer(), SecondsSince(start), "teacher_");
    result.Device = models.Teacher->GetDevice();
  }

  // Every output is written and checked under a temporary name first, then
  // all are renamed: a failure part-way leaves none of this run's outputs.
  start = Clock::now();
  std::vector<std::pair<std::string, std::string>> staged; // temporary, final
  try
  {
    for (const auto & kind : OutputKinds)
    {
      const auto output = job.Outputs.find(kind);
      if (output == job.Outputs.end())
      {
        continue;
      }
      const std::string & file = output->second;
      std::string         temporary;
      if (kind == "mask")
      {
        temporary = itk::KDBrainExtractionOutputFile::StageImage(student->GetMaskOutput(), file);
      }
      else if (kind == "brain")
      {
        temporary = itk::KDBrainExtractionOutputFile::StageImage(student->GetMaskedOutput(), file);
      }
      else if (kind == "probability")
      {
        temporary = itk::KDBrainExtractionOutputFile::StageImage(student->GetProbabilityOutput(), file);
      }
      else if (kind == "teacher-brain")
      {
        temporary = itk::KDBrainExtractionOutputFile::StageImage(teacher->GetOutput(), file);
      }
      else if (kind == "qc")
      {
        temporary = StageQualityControlPicture(image, student->GetMaskOutput(), file);
      }
      staged.emplace_back(temporary, file);
    }
  }
  catch (...)
  {
    for (const auto & file : staged)
    {
      itk::KDBrainExtractionOutputFile::Discard(file.first);
    }
    throw;
  }
  for (std::size_t index = 0; index < staged.size(); ++index)
  {
    try
    {
      itk::KDBrainExtractionOutputFile::MoveIntoPlace(staged[index].first, staged[index].second);
    }
    catch (...)
    {
      for (std::size_t later = index + 1; later < staged.size(); ++later)
      {
        itk::KDBrainExtractionOutputFile::Discard(staged[later].first);
      }
      throw;
    }
  }
  for (const auto & kind : OutputKinds)
  {
    if (job.Outputs.count(kind))
    {
      result.Written.push_back(kind + " " + job.Outputs.at(kind));
    }
  }
  result.Stages["write"] = SecondsSince(start);
}

nlohmann::ordered_json
SummaryRows(const std::vector<JobResult> & results, const Models & models)
{
  auto rows = nlohmann::ordered_json::array();
  for (const auto & r : results)
  {
    nlohmann::ordered_json row;
    row["input"] = r.Input;
    row["status"] = Status(r);
    row["message"] = r.Message;
    row["brain_ml"] = r.Succeeded && r.HasMask ? nlohmann::ordered_json(r.BrainMillilitres) : nullptr;
    row["seconds"] = r.Seconds;
    row["device"] = r.Device;
    row["stage_seconds"] = nlohmann::ordered_json::object();
    for (const auto & stage : r.Stages)
    {
      row["stage_seconds"][stage.first] = stage.second;
    }
    row["model"] = models.Student ? models.Student->GetChecksum() : "";
    row["teacher_model"] = models.Teacher ? models.Teacher->GetChecksum() : "";
    row["refiner_model"] = models.Refiner ? models.Refiner->GetChecksum() : "";
    row["threshold"] = models.Threshold;
    row["border_mm"] = models.Border;
    row["mirror"] = models.Mirror;
    rows.push_back(row);
  }
  return rows;
}

void
WriteSummaryRows(const nlohmann::ordered_json & rows, const std::string & fileName)
{
  const bool json = itksys::SystemTools::LowerCase(itksys::SystemTools::GetFilenameLastExtension(fileName)) == ".json";
  std::ostringstream text;
  if (json)
  {
    // One row per line: a cohort's summary stays readable and diffable.
    text << "[\n";
    for (std::size_t i = 0; i < rows.size(); ++i)
    {
      text << "  " << rows[i].dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
           << (i + 1 < rows.size() ? "," : "") << "\n";
    }
    text << "]\n";
  }
  else
  {
    const std::vector<std::string> stageNames{ "read",     "preprocess",  "network", "refinement",
                                               "map_back", "postprocess", "write" };
    text << "input,status,brain_ml,seconds,device,message";
    for (const auto & stage : stageNames)
    {
      text << "," << stage << "_s";
    }
    text << ",model,teacher_model,refiner_model,threshold,border_mm,mirror\n";
    for (const auto & row : rows)
    {
      for (const char * key : { "input", "status", "brain_ml", "seconds", "device", "message" })
      {
        text << (std::string(key) == "input" ? "" : ",") << CsvValue(row.value(key, nlohmann::ordered_json()));
      }
      const auto stages = row.value("stage_seconds", nlohmann::ordered_json::object());
      for (const auto & stage : stageNames)
      {
        text << "," << CsvValue(stages.value(stage, nlohmann::ordered_json()));
      }
      for (const char * key : { "model", "teacher_model", "refiner_model", "threshold", "border_mm", "mirror" })
      {
        text << "," << CsvValue(row.value(key, nlohmann::ordered_json()));
      }
      text << "\n";
    }
  }
  itk::KDBrainExtractionOutputFile::WriteBytes(text.str(), fileName, "the summary");
}

void
WriteSummary(const std::vector<JobResult> & results, const Models & models, const std::string & fileName)
{
  WriteSummaryRows(SummaryRows(results, models), fileName);
}
} // namespace kdbet
