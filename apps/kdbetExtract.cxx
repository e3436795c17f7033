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

#include "kdbetWorker.h"

#include "itksys/Directory.hxx"

#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <unistd.h>

namespace kdbet
{
namespace
{
/** Inputs named by -i (files or folders, folders not recursed) and --list
 * files (one path per line, # comments; relative to the list's folder). */
/** Whether \a path is the .img of an Analyze/NIfTI .hdr/.img pair: the
 * pair is one volume, read through its .hdr. */
bool
IsDataOfAPair(const std::string & path)
{
  const std::string extension = itk::KDBrainExtractionInputFile::ImageExtension(path);
  const std::string lower = itksys::SystemTools::LowerCase(extension);
  if (lower != ".img" && lower != ".img.gz")
  {
    return false;
  }
  const std::string stem = path.substr(0, path.size() - extension.size());
  return itksys::SystemTools::FileExists(stem + ".hdr", true) || itksys::SystemTools::FileExists(stem + ".HDR", true);
}

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
        if (!itksys::SystemTools::FileIsDirectory(path) && LooksLikeImage(path) && !IsDataOfAPair(path))
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
    try
    {
      itk::KDBrainExtractionInputFile::CheckFile(list); // not a FIFO, device or folder
    }
    catch (const itk::ExceptionObject & error)
    {
      throw UsageError(itk::KDBrainExtractionInputFile::DescribeError(error) + " (the --list file)");
    }
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

const char * ExtractHelp =
  R"(Usage: kdbet extract -i IN [-o BRAIN] [-m MASK] [-p PROB] [--qc PNG] [options]
       kdbet extract -i IN... | -i FOLDER | --list FILE  --output-dir DIR [options]

Skull stripping of 3D head MRI (T1w, T2w, PDw; T1w is the most accurate, see
Data/Models/README.md) with the distilled student UNet++. Outputs lie on the
input's grid: the mask as uint8 0/1, the probability as float, the brain as the
input with everything outside the mask set to 0. The format follows the extension
(.nii.gz, .nii, .nrrd, .mha, ...). Without -o/-m/-p/--qc/--teacher-brain, writes
NAME_brain.nii.gz and NAME_mask.nii.gz in the current folder. Outputs are
written under a temporary name and renamed when complete.

One volume:
  -i, --input FILE         head volume (any scalar 3D image ITK reads; a 4D file
                           is refused unless it holds a single volume)
  -o, --brain FILE         brain-only image (input masked)
  -m, --mask FILE          brain mask (uint8, 0/1)
  -p, --probability FILE   brain probability (float, 0..1)
      --teacher-brain FILE brain-only image predicted by the teacher network
      --qc FILE.png        picture of the mask outline on axial, coronal and
                           sagittal slices through the brain

Several volumes (the models are loaded once; a bad input fails alone, and so
does one whose worker process crashes or is killed, e.g. out of memory):
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
      --in-process         run every volume in this process, not in a worker
                           process that is restarted after a crash (for
                           debuggers; a crash then ends the run)

Options:
      --model FILE         student model (default: the shipped student, below)
      --teacher-model FILE teacher model for --teacher-brain (default: the shipped
                           teacher)
      --refine             the fine stage (experimental, off by default: it gains
                           on painted heads but loses on real scans, see
                           docs/fine-stage.md)
      --refiner-model FILE the fine stage's model (default: the shipped refiner;
                           implies --refine)
      --device D           auto (default: CUDA when present, else CPU), cpu, cuda, cuda:N
  -g, --gpu                run on the GPU (as --device cuda; an error without one)
  -t, --threads N          CPU threads for the network (default: all cores)
      --threshold T        brain probability threshold (default 0.5)
  -b, --border MM          move the mask's border out (MM > 0) or in (MM < 0) by
                           MM millimetres (default 0)
      --mirror             test-time augmentation: average the networks' outputs
                           for the head as is and mirrored left-right (twice
                           the network time)
      --timings            print the seconds of each stage of each volume
  -h, --help               this text

Exit status: 0 when every volume succeeded, 1 when any failed (in batch mode
the others are still done), 2 for a usage error.

Examples:
  kdbet extract -i head.nii.gz -o brain.nii.gz -m mask.nii.gz
  kdbet extract -i scans/ --output-dir out/ --write brain,mask,qc -t 8
  kdbet bids /data/study /data/study/derivatives/kdbet participant   (BIDS datasets)
  sbatch --array=1-40 scripts/slurm/kdbet-bids-array.sbatch /data/study /out
                                  (Slurm, one participant per task; README "Running a study")

Fine stage (--refine): for inputs finer than the student's 2 mm grid (some axis
below 1.5 mm), voxels from 8 mm inside to 4 mm outside the student's boundary
are re-decided at 1 mm by a refiner network that sees the input at that
resolution (--timings shows it as "refinement").

Default models: Data/Models/kdbet_student.kdbm, kdbet_teacher.kdbm and
kdbet_refiner.kdbm, found in $KDBET_MODEL_DIR when it is set, else in
share/KDBrainExtraction/Models beside the install (or build) tree: a distilled
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
/** Removes the output folder a run created when the run fails before using
 * it (a usage error found after the folder was made); only while empty. */
struct CreatedFolder
{
  std::string Path;
  CreatedFolder() = default;
  CreatedFolder(const CreatedFolder &) = delete;
  CreatedFolder &
  operator=(const CreatedFolder &) = delete;
  ~CreatedFolder()
  {
    if (!Path.empty())
    {
      ::rmdir(Path.c_str());
    }
  }
};
} // namespace

int
Extract(int argc, char * argv[])
{
  CreatedFolder   createdFolder;
  const Arguments arguments(argc,
                            argv,
                            { "--help", "--timings", "--mirror", "--refine", "--gpu", "--in-process" },
                            { { "-i", "--input" },
                              { "-o", "--brain" },
                              { "-m", "--mask" },
                              { "-p", "--probability" },
                              { "-g", "--gpu" },
                              { "-t", "--threads" },
                              { "-b", "--border" },
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
                            "--timings", "--gpu",     "--in-process" });
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
    // Outputs beside the inputs would be taken for inputs by the next run.
    for (const auto & input : arguments.GetAll("--input"))
    {
      if (itksys::SystemTools::FileIsDirectory(input) && itksys::SystemTools::FileIsDirectory(directory) &&
          itksys::SystemTools::GetRealPath(input) == itksys::SystemTools::GetRealPath(directory))
      {
        throw UsageError(directory + ": --output-dir is the input folder " + input +
                         "; outputs there would be read as inputs by a rerun (choose another folder)");
      }
    }
    if (!itksys::SystemTools::FileIsDirectory(directory))
    {
      if (!itksys::SystemTools::MakeDirectory(directory))
      {
        throw UsageError(directory + ": cannot create the output folder");
      }
      createdFolder.Path = directory;
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
  models.Border = arguments.GetNumber("--border", 0.0);
  models.Mirror = arguments.Has("--mirror");
  models.Device = arguments.Get("--device", "auto");
  if (arguments.Has("--gpu"))
  {
    if (models.Device != "auto" && models.Device.rfind("cuda", 0) != 0)
    {
      throw UsageError("--gpu and --device " + models.Device + " contradict each other");
    }
    models.Device = models.Device == "auto" ? "cuda" : models.Device;
  }
  models.Threads = arguments.GetCount("--threads", DefaultNumberOfThreads());
  // Unwritable outputs, bad models and an absent CUDA device fail the whole
  // run before any work.
  for (const auto & job : jobs)
  {
    for (const auto & output : job.Outputs)
    {
      itk::KDBrainExtractionOutputFile::CheckOutputName(output.second);
    }
  }
  if (!summaryFile.empty())
  {
    itk::KDBrainExtractionOutputFile::CheckOutputName(summaryFile, false);
  }
  CheckOutputsAreNew(jobs, summaryFile);
  bool needStudent = false;
  bool needTeacher = false;
  for (const auto & job : jobs)
  {
    needTeacher = needTeacher || job.Outputs.count("teacher-brain");
    needStudent = needStudent || job.Outputs.size() > job.Outputs.count("teacher-brain");
  }
  LoadModels(models,
             needStudent,
             needTeacher,
             arguments.Has("--refine"),
             arguments.Get("--model"),
             arguments.Get("--teacher-model"),
             arguments.Get("--refiner-model"));

  JobRunner runner(models, !single && !arguments.Has("--in-process"));
  createdFolder.Path.clear(); // the run is on: the folder stays
  ProgressDisplay        progress(jobs.size());
  std::vector<JobResult> results;
  const bool             timings = arguments.Has("--timings");
  for (std::size_t index = 0; index < jobs.size(); ++index)
  {
    JobResult result;
    result.Input = jobs[index].Input;
    progress.StartVolume(index, jobs[index].Input, "reading");
    const auto start = Clock::now();
    RunAlone(result, start, [&] { runner.Run(jobs[index], progress, result); });
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
