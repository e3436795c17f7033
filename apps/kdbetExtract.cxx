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
// kdbet extract: one volume, or a cohort (files, folders, list files) with
// the models loaded once, a progress display, QC pictures and a summary table.

#include "itkCommand.h"
#include "itkKDStudentMaskFilter.h"
#include "itkKDTeacherImageFilter.h"
#include "kdbetCommon.h"
#include "kdbetQualityControl.h"

#include "itksys/Directory.hxx"

#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>

namespace kdbet
{
namespace
{
using Clock = std::chrono::steady_clock;

double
SecondsSince(Clock::time_point start)
{
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string
FormatDuration(double seconds)
{
  const auto         total = static_cast<long>(std::max(0.0, seconds));
  std::ostringstream text;
  text << std::setfill('0') << std::setw(2) << total / 3600 << ":" << std::setw(2) << (total / 60) % 60 << ":"
       << std::setw(2) << total % 60;
  return text.str();
}

/** The outputs one volume can have, in the order they are written. */
const std::vector<std::string> OutputKinds{ "mask", "brain", "probability", "teacher-brain", "qc" };

/** One input volume and the files to write for it (output kind -> file). */
struct Job
{
  std::string                        Input;
  std::map<std::string, std::string> Outputs;
};

/** What happened to one volume: a row of the summary. */
struct JobResult
{
  std::string                   Input;
  bool                          Succeeded{ false };
  std::string                   Message;
  bool                          HasMask{ false }; // the student ran; BrainMillilitres is its volume
  double                        BrainMillilitres{ 0.0 };
  double                        Seconds{ 0.0 };
  std::string                   Device;
  std::map<std::string, double> Stages;
  std::vector<std::string>      Written;
};

/** The name of an input without folder and image extension. */
std::string
InputStem(const std::string & input)
{
  const std::string name = itksys::SystemTools::GetFilenameName(input);
  return name.substr(0, name.size() - ImageExtension(input).size());
}

bool
LooksLikeImage(const std::string & fileName)
{
  static const std::set<std::string> extensions{ ".nii.gz", ".nii", ".nrrd", ".nhdr",   ".mha",
                                                 ".mhd",    ".hdr", ".img",  ".img.gz", ".mgz" };
  const std::string                  name = itksys::SystemTools::GetFilenameName(fileName);
  return !name.empty() && name[0] != '.' && extensions.count(itksys::SystemTools::LowerCase(ImageExtension(fileName)));
}

/** Inputs named by -i (files or folders, folders not recursed) and --list
 * files (one path per line, # comments; relative to the list's folder). */
std::vector<std::string>
CollectInputs(const std::vector<std::string> & inputs, const std::vector<std::string> & lists)
{
  std::vector<std::string> files;
  for (const auto & input : inputs)
  {
    if (itksys::SystemTools::FileIsDirectory(input))
    {
      itksys::Directory directory;
      directory.Load(input);
      std::vector<std::string> found;
      for (unsigned long i = 0; i < directory.GetNumberOfFiles(); ++i)
      {
        const std::string path = input + "/" + directory.GetFile(i);
        if (!itksys::SystemTools::FileIsDirectory(path) && LooksLikeImage(path))
        {
          found.push_back(path);
        }
      }
      if (found.empty())
      {
        throw UsageError(input + ": the folder holds no image files (.nii, .nii.gz, .nrrd, .mha, .mhd, ...)");
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    }
    else
    {
      files.push_back(input);
    }
  }
  for (const auto & list : lists)
  {
    std::ifstream stream(list);
    if (!stream)
    {
      throw UsageError(list + ": cannot read the list file");
    }
    const std::string folder = itksys::SystemTools::GetFilenamePath(list);
    std::string       line;
    while (std::getline(stream, line))
    {
      line.erase(0, line.find_first_not_of(" \t"));
      line.erase(line.find_last_not_of(" \t\r") + 1);
      if (line.empty() || line[0] == '#')
      {
        continue;
      }
      files.push_back(itksys::SystemTools::FileIsFullPath(line) || folder.empty() ? line : folder + "/" + line);
    }
  }
  return files;
}

/** \a pattern with <name> and <output> replaced. */
std::string
ExpandPattern(std::string pattern, const std::string & name, const std::string & output)
{
  for (const auto & field :
       { std::make_pair(std::string("<name>"), name), std::make_pair(std::string("<output>"), output) })
  {
    for (auto at = pattern.find(field.first); at != std::string::npos;
         at = pattern.find(field.first, at + field.second.size()))
    {
      pattern.replace(at, field.first.size(), field.second);
    }
  }
  return pattern;
}

/** Progress display: on a terminal, one line redrawn with the volume's bar
 * and the cohort's; otherwise nothing until a volume is done. */
class ProgressDisplay
{
public:
  ProgressDisplay(std::size_t numberOfVolumes)
    : m_NumberOfVolumes(numberOfVolumes)
    , m_Terminal(isatty(STDERR_FILENO))
    , m_Start(Clock::now())
  {}

  void
  StartVolume(std::size_t index, const std::string & input, const char * stage)
  {
    m_Index = index;
    m_Label = itksys::SystemTools::GetFilenameName(input);
    m_Stage = stage;
    Draw(0.0);
  }

  void
  Watch(itk::ProcessObject * filter, const char * stage)
  {
    auto observer = itk::MemberCommand<ProgressDisplay>::New();
    observer->SetCallbackFunction(this, &ProgressDisplay::OnProgress);
    filter->AddObserver(itk::ProgressEvent(), observer);
    m_Stage = stage;
  }

  void
  FinishVolume(const JobResult & result)
  {
    ++m_Done;
    std::ostringstream line;
    line << "kdbet: [" << m_Index + 1 << "/" << m_NumberOfVolumes << "] " << result.Input << ": ";
    if (result.Succeeded)
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

private:
  void
  OnProgress(itk::Object * caller, const itk::EventObject &)
  {
    Draw(static_cast<itk::ProcessObject *>(caller)->GetProgress());
  }

  void
  Draw(double fraction)
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

  std::size_t       m_NumberOfVolumes;
  bool              m_Terminal;
  Clock::time_point m_Start;
  std::size_t       m_Index{ 0 };
  std::size_t       m_Done{ 0 };
  std::string       m_Label;
  std::string       m_Stage;
};

/** The models, loaded once for the whole run. */
struct Models
{
  ModelType::Pointer Student;
  ModelType::Pointer Teacher;
  /** The fine stage's model; null when it is off or none is to be had. */
  ModelType::Pointer Refiner;
  std::string        Device;
  unsigned int       Threads{ 0 };
  double             Threshold{ 0.5 };
  bool               Mirror{ false };
  double             Border{ 0.0 };
};

void
AddStageTimes(JobResult & result, const ModelType * model, double filterSeconds, const std::string & prefix)
{
  const auto stages = model->GetLastStageTimes();
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

/** Reads, extracts and writes one volume; throws on any failure, having
 * written nothing under a final name. */
void
RunJob(const Job & job, const Models & models, ProgressDisplay & progress, JobResult & result)
{
  auto       start = Clock::now();
  const auto image = ReadHeadImage(job.Input);
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
    AddStageTimes(result, models.Student, SecondsSince(start), "");
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
    AddStageTimes(result, models.Teacher, SecondsSince(start), "teacher_");
    result.Device = models.Teacher->GetDevice();
  }

  start = Clock::now();
  for (const auto & kind : OutputKinds)
  {
    const auto output = job.Outputs.find(kind);
    if (output == job.Outputs.end())
    {
      continue;
    }
    const std::string & file = output->second;
    if (kind == "mask")
    {
      WriteAtomically(student->GetMaskOutput(), file);
    }
    else if (kind == "brain")
    {
      WriteAtomically(student->GetMaskedOutput(), file);
    }
    else if (kind == "probability")
    {
      WriteAtomically(student->GetProbabilityOutput(), file);
    }
    else if (kind == "teacher-brain")
    {
      WriteAtomically(teacher->GetOutput(), file);
    }
    else if (kind == "qc")
    {
      WriteQualityControlPicture(image, student->GetMaskOutput(), file);
    }
    result.Written.push_back(kind + " " + file);
  }
  result.Stages["write"] = SecondsSince(start);
}

std::string
JsonString(const std::string & text)
{
  std::ostringstream quoted;
  quoted << '"';
  for (const char c : text)
  {
    if (c == '"' || c == '\\')
    {
      quoted << '\\' << c;
    }
    else if (static_cast<unsigned char>(c) < 0x20)
    {
      quoted << "\\u" << std::hex << std::setw(4) << std::setfill('0') << static_cast<int>(c) << std::dec;
    }
    else
    {
      quoted << c;
    }
  }
  quoted << '"';
  return quoted.str();
}

std::string
CsvField(const std::string & text)
{
  if (text.find_first_of(",\"\n") == std::string::npos)
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

/** The summary table, CSV or JSON by the file's extension, written
 * atomically. Each row also records the models (checksums) and settings that
 * made it, so that a cohort's outputs can be traced and reproduced. */
void
WriteSummary(const std::vector<JobResult> & results, const Models & models, const std::string & fileName)
{
  const std::string studentChecksum = models.Student ? models.Student->GetChecksum() : "";
  const std::string teacherChecksum = models.Teacher ? models.Teacher->GetChecksum() : "";
  const std::string refinerChecksum = models.Refiner ? models.Refiner->GetChecksum() : "";
  const bool json = itksys::SystemTools::LowerCase(itksys::SystemTools::GetFilenameLastExtension(fileName)) == ".json";
  std::ostringstream text;
  text << std::setprecision(6);
  const std::vector<std::string> stageNames{ "read",     "preprocess",  "network", "refinement",
                                             "map_back", "postprocess", "write" };
  if (json)
  {
    text << "[\n";
    for (std::size_t i = 0; i < results.size(); ++i)
    {
      const auto & r = results[i];
      text << "  {\"input\": " << JsonString(r.Input) << ", \"status\": \"" << (r.Succeeded ? "ok" : "failed")
           << "\", \"message\": " << JsonString(r.Message) << ", \"brain_ml\": ";
      if (r.Succeeded && r.HasMask)
      {
        text << r.BrainMillilitres;
      }
      else
      {
        text << "null";
      }
      text << ", \"seconds\": " << r.Seconds << ", \"device\": " << JsonString(r.Device) << ", \"stage_seconds\": {";
      bool first = true;
      for (const auto & stage : r.Stages)
      {
        text << (first ? "" : ", ") << JsonString(stage.first) << ": " << stage.second;
        first = false;
      }
      text << "}, \"model\": " << JsonString(studentChecksum) << ", \"teacher_model\": " << JsonString(teacherChecksum)
           << ", \"refiner_model\": " << JsonString(refinerChecksum) << ", \"threshold\": " << models.Threshold
           << ", \"border_mm\": " << models.Border << ", \"mirror\": " << (models.Mirror ? "true" : "false") << "}"
           << (i + 1 < results.size() ? "," : "") << "\n";
    }
    text << "]\n";
  }
  else
  {
    text << "input,status,brain_ml,seconds,device,message";
    for (const auto & stage : stageNames)
    {
      text << "," << stage << "_s";
    }
    text << ",model,teacher_model,refiner_model,threshold,border_mm,mirror\n";
    for (const auto & r : results)
    {
      text << CsvField(r.Input) << "," << (r.Succeeded ? "ok" : "failed") << ",";
      if (r.Succeeded && r.HasMask)
      {
        text << r.BrainMillilitres;
      }
      text << "," << r.Seconds << "," << r.Device << "," << CsvField(r.Message);
      for (const auto & stage : stageNames)
      {
        const auto found = r.Stages.find(stage);
        text << ",";
        if (found != r.Stages.end())
        {
          text << found->second;
        }
      }
      text << "," << studentChecksum << "," << teacherChecksum << "," << refinerChecksum << "," << models.Threshold
           << "," << models.Border << "," << (models.Mirror ? 1 : 0) << "\n";
    }
  }
  const std::string temporary = fileName + ".kdbet-" + std::to_string(::getpid());
  {
    std::ofstream file(temporary);
    file << text.str();
    if (!file)
    {
      std::remove(temporary.c_str());
      itkGenericExceptionMacro(<< fileName << ": cannot write the summary");
    }
  }
  if (std::rename(temporary.c_str(), fileName.c_str()) != 0)
  {
    std::remove(temporary.c_str());
    itkGenericExceptionMacro(<< fileName << ": cannot move the summary into place");
  }
}

const char * ExtractHelp =
  R"(Usage: kdbet extract -i IN [-o BRAIN] [-m MASK] [-p PROB] [-g TEACHER] [--qc PNG] [options]
       kdbet extract -i IN... | -i FOLDER | --list FILE  --output-dir DIR [options]

Skull stripping of 3D head MRI (T1w, T2w, PDw; T1w is the most accurate, see
Data/Models/README.md) with the distilled student UNet++. Outputs lie on the
input's grid: the mask as uint8 0/1, the probability as float, the brain as the
input with everything outside the mask set to 0. The format follows the extension
(.nii.gz, .nii, .nrrd, .mha, ...). Without -o/-m/-p/-g/--qc, writes
NAME_brain.nii.gz and NAME_mask.nii.gz in the current folder. Outputs are
written under a temporary name and renamed when complete.

One volume:
  -i, --input FILE         head volume (any scalar 3D image ITK reads; a 4D file
                           is refused unless it holds a single volume)
  -o, --brain FILE         brain-only image (input masked)
  -m, --mask FILE          brain mask (uint8, 0/1)
  -p, --probability FILE   brain probability (float, 0..1)
  -g, --teacher-brain FILE brain-only image predicted by the teacher network
      --qc FILE.png        picture of the mask outline on axial, coronal and
                           sagittal slices through the brain

Several volumes (the models are loaded once; a bad input fails alone):
  -i FILE|FOLDER           repeatable; a folder adds its image files (not recursive)
      --list FILE          a text file of input paths, one per line (# comments)
      --output-dir DIR     where outputs go (created if needed); implies batch mode
      --write LIST         outputs per volume, a comma list of mask, brain,
                           probability, teacher-brain, qc (default brain,mask)
      --pattern P          output file names: <name> is the input's name without
                           extension, <output> the kind above
                           (default <name>_<output>.nii.gz; qc: <name>_qc.png)
      --summary FILE       a table per volume: input, status, brain volume (ml),
                           seconds, device, message, seconds per stage, model
                           checksums and settings; CSV, or JSON for a .json
                           name (default DIR/kdbet_summary.csv)

Options:
      --model FILE         student model (default: the shipped student, below)
      --teacher-model FILE teacher model for -g (default: the shipped teacher)
      --refine             the fine stage (experimental, off by default: it gains
                           on painted heads but loses on real scans, see
                           docs/fine-stage.md)
      --refiner-model FILE the fine stage's model (default: the shipped refiner;
                           implies --refine)
      --device D           auto (default: CUDA when present, else CPU), cpu, cuda, cuda:N
      --threads N          CPU threads for the network (default: all cores)
      --threshold T        brain probability threshold (default 0.5)
      --border MM          move the mask's border out (MM > 0) or in (MM < 0) by
                           MM millimetres (default 0)
      --mirror             test-time augmentation: average the networks' outputs
                           for the head as is and mirrored left-right (twice
                           the network time)
      --timings            print the seconds of each stage of each volume
  -h, --help               this text

Exit status: 0 when every volume succeeded, 1 when any failed (in batch mode
the others are still done), 2 for a usage error.

Fine stage (--refine): for inputs finer than the student's 2 mm grid (some axis
below 1.5 mm), voxels from 8 mm inside to 4 mm outside the student's boundary
are re-decided at 1 mm by a refiner network that sees the input at that
resolution (--timings shows it as "refinement").

Default models: Data/Models/kdbet_student.kdbm, kdbet_teacher.kdbm and
kdbet_refiner.kdbm, found
through $KDBET_MODEL_DIR, the install tree or the source tree: a distilled
student (UNet++, width 8) and its teacher (width 16), trained by this project's
own trainer (`kdbet train`) on 181 IXI T1w heads and on synthetic T1w-, T2w-,
PDw-like and random contrasts painted from their labels. `kdbet info MODEL`
shows how a model was made.
)";

std::vector<std::string>
SplitList(const std::string & text)
{
  std::vector<std::string> items;
  std::istringstream       stream(text);
  std::string              item;
  while (std::getline(stream, item, ','))
  {
    if (!item.empty())
    {
      items.push_back(item);
    }
  }
  return items;
}
} // namespace

int
Extract(int argc, char * argv[])
{
  const Arguments arguments(argc,
                            argv,
                            { "--help", "--timings", "--mirror", "--refine" },
                            { { "-i", "--input" },
                              { "-o", "--brain" },
                              { "-m", "--mask" },
                              { "-p", "--probability" },
                              { "-g", "--teacher-brain" },
                              { "-h", "--help" } });
  if (arguments.Has("--help"))
  {
    std::cout << ExtractHelp;
    return 0;
  }
  arguments.RejectUnknown({ "--input",   "--brain",   "--mask",          "--probability",   "--teacher-brain",
                            "--qc",      "--list",    "--output-dir",    "--write",         "--pattern",
                            "--summary", "--model",   "--teacher-model", "--refiner-model", "--refine",
                            "--device",  "--threads", "--threshold",     "--border",        "--mirror",
                            "--timings" });
  const auto inputs = CollectInputs(arguments.GetAll("--input"), arguments.GetAll("--list"));
  if (inputs.empty())
  {
    throw UsageError("no input: use -i FILE, -i FOLDER or --list FILE (see kdbet extract --help)");
  }
  const bool single = inputs.size() == 1 && !arguments.Has("--output-dir") && !arguments.Has("--list") &&
                      !itksys::SystemTools::FileIsDirectory(arguments.Get("--input"));
  std::vector<Job> jobs;
  if (single)
  {
    Job job;
    job.Input = inputs.front();
    const std::map<std::string, std::string> named{ { "mask", "--mask" },
                                                    { "brain", "--brain" },
                                                    { "probability", "--probability" },
                                                    { "teacher-brain", "--teacher-brain" },
                                                    { "qc", "--qc" } };
    for (const auto & entry : named)
    {
      if (arguments.Has(entry.second))
      {
        job.Outputs[entry.first] = arguments.Get(entry.second);
      }
    }
    if (job.Outputs.empty())
    {
      job.Outputs["brain"] = InputStem(job.Input) + "_brain.nii.gz";
      job.Outputs["mask"] = InputStem(job.Input) + "_mask.nii.gz";
    }
    jobs.push_back(job);
  }
  else
  {
    for (const char * option : { "--brain", "--mask", "--probability", "--teacher-brain", "--qc" })
    {
      if (arguments.Has(option))
      {
        throw UsageError(std::string(option) +
                         " names one output file; with several inputs use --output-dir, --write and --pattern");
      }
    }
    const std::string directory = arguments.Get("--output-dir");
    if (directory.empty())
    {
      throw UsageError("several inputs need --output-dir DIR");
    }
    if (!itksys::SystemTools::FileIsDirectory(directory) && !itksys::SystemTools::MakeDirectory(directory))
    {
      throw UsageError(directory + ": cannot create the output folder");
    }
    const auto kinds = SplitList(arguments.Get("--write", "brain,mask"));
    if (kinds.empty())
    {
      throw UsageError("--write needs at least one of mask, brain, probability, teacher-brain, qc");
    }
    for (const auto & kind : kinds)
    {
      if (std::find(OutputKinds.begin(), OutputKinds.end(), kind) == OutputKinds.end())
      {
        throw UsageError("--write: unknown output '" + kind + "' (use mask, brain, probability, teacher-brain, qc)");
      }
    }
    const std::string pattern = arguments.Get("--pattern", "<name>_<output>.nii.gz");
    if (pattern.find("<name>") == std::string::npos)
    {
      throw UsageError("--pattern must contain <name>, or every volume would write the same file");
    }
    if (kinds.size() > 1 &&
        std::count_if(kinds.begin(), kinds.end(), [](const std::string & k) { return k != "qc"; }) > 1 &&
        pattern.find("<output>") == std::string::npos)
    {
      throw UsageError("--pattern must contain <output> when several outputs are written");
    }
    std::set<std::string> names;
    for (const auto & input : inputs)
    {
      Job job;
      job.Input = input;
      const std::string stem = InputStem(input);
      if (!names.insert(stem).second)
      {
        throw UsageError(input + ": another input has the same name '" + stem + "'; their outputs would collide");
      }
      for (const auto & kind : kinds)
      {
        job.Outputs[kind] = directory + "/" + (kind == "qc" ? stem + "_qc.png" : ExpandPattern(pattern, stem, kind));
      }
      jobs.push_back(job);
    }
  }
  std::string summaryFile = arguments.Get("--summary");
  if (summaryFile.empty() && !single)
  {
    summaryFile = arguments.Get("--output-dir") + "/kdbet_summary.csv";
  }

  Models models;
  models.Threshold = arguments.GetNumber("--threshold", 0.5);
  if (!(models.Threshold > 0.0 && models.Threshold < 1.0))
  {
    throw UsageError("--threshold must be between 0 and 1");
  }
  models.Border = arguments.GetNumber("--border", 0.0);
  if (!std::isfinite(models.Border) || std::abs(models.Border) > 50.0)
  {
    throw UsageError("--border must be a distance in mm between -50 and 50");
  }
  models.Mirror = arguments.Has("--mirror");
  models.Device = arguments.Get("--device", "auto");
  models.Threads = arguments.GetCount("--threads", DefaultNumberOfThreads());
  // Unwritable outputs, bad models and an absent CUDA device fail the whole
  // run before any work.
  for (const auto & job : jobs)
  {
    for (const auto & output : job.Outputs)
    {
      CheckWritable(output.second);
    }
  }
  if (!summaryFile.empty())
  {
    CheckWritable(summaryFile, false);
  }
  bool needStudent = false;
  bool needTeacher = false;
  for (const auto & job : jobs)
  {
    needTeacher = needTeacher || job.Outputs.count("teacher-brain");
    needStudent = needStudent || job.Outputs.size() > job.Outputs.count("teacher-brain");
  }
  if (needStudent)
  {
    models.Student = LoadModel(arguments.Get("--model"), ModelType::RoleEnum::Student);
    models.Student->SetDevice(models.Device);
  }
  if (needStudent && (arguments.Has("--refine") || arguments.Has("--refiner-model")))
  {
    models.Refiner = LoadModel(arguments.Get("--refiner-model"), ModelType::RoleEnum::Refiner);
    models.Refiner->SetDevice(models.Device);
  }
  if (needTeacher)
  {
    models.Teacher = LoadModel(arguments.Get("--teacher-model"), ModelType::RoleEnum::Teacher);
    models.Teacher->SetDevice(models.Device);
  }

  ProgressDisplay        progress(jobs.size());
  std::vector<JobResult> results;
  const bool             timings = arguments.Has("--timings");
  for (std::size_t index = 0; index < jobs.size(); ++index)
  {
    JobResult result;
    result.Input = jobs[index].Input;
    progress.StartVolume(index, jobs[index].Input, "reading");
    const auto start = Clock::now();
    try
    {
      RunJob(jobs[index], models, progress, result);
      result.Succeeded = true;
    }
    catch (const itk::ExceptionObject & error)
    {
      result.Message = DescribeError(error);
    }
    catch (const std::exception & error)
    {
      result.Message = error.what();
    }
    result.Message = result.Message.substr(0, result.Message.find('\n'));
    result.Seconds = SecondsSince(start);
    if (single)
    {
      if (!result.Succeeded)
      {
        if (!summaryFile.empty())
        {
          WriteSummary({ result }, models, summaryFile);
        }
        itkGenericExceptionMacro(<< result.Message);
      }
      if (isatty(STDERR_FILENO))
      {
        std::cerr << "\r\033[K" << std::flush;
      }
      if (result.HasMask)
      {
        std::cout << "brain volume: " << result.BrainMillilitres << " ml (device " << result.Device << ")" << std::endl;
      }
      else
      {
        std::cout << "device: " << result.Device << std::endl;
      }
      for (const auto & line : result.Written)
      {
        std::cout << "wrote " << line << std::endl;
      }
      std::cout << "seconds: " << result.Seconds << std::endl;
    }
    else
    {
      progress.FinishVolume(result);
    }
    if (timings && result.Succeeded)
    {
      std::cout << "stage seconds " << result.Input << ":";
      for (const auto & stage : result.Stages)
      {
        std::cout << " " << stage.first << " " << std::fixed << std::setprecision(3) << stage.second
                  << std::defaultfloat;
      }
      std::cout << std::endl;
    }
    results.push_back(result);
  }
  if (!summaryFile.empty())
  {
    WriteSummary(results, models, summaryFile);
  }
  const auto failed = std::count_if(results.begin(), results.end(), [](const JobResult & r) { return !r.Succeeded; });
  if (!single)
  {
    std::cout << "kdbet: " << results.size() - failed << " of " << results.size() << " volumes done"
              << (failed ? ", " + std::to_string(failed) + " failed" : std::string()) << "; summary " << summaryFile
              << std::endl;
  }
  return failed ? 1 : 0;
}
} // namespace kdbet
