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
// kdbet: brain extraction from the command line with the module's filters.
// This file: the command dispatch, train, protocol, evaluate, info and average;
// extraction is in kdbetExtract.cxx, what the commands share in kdbetCommon.

#include "itkHybridLossMetric.h"
#include "itkKDBrainExtractionEvaluationProtocol.h"
#include "itkKDBrainExtractionTrainer.h"
#include "kdbetCommon.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <csignal>
#include <iostream>
#include <sstream>
#include <streambuf>
#include <unistd.h>

#ifndef KDBrainExtraction_VERSION
#  define KDBrainExtraction_VERSION "unknown"
#endif

namespace kdbet
{
int
Extract(int argc, char * argv[]);
int
Bids(int argc, char * argv[], const std::string & commandLine);
int
Worker(int argc, char * argv[]); // kdbetWorker.h
} // namespace kdbet

namespace
{
using namespace kdbet;

/** The trainer's progress on standard error: on a terminal a bar redrawn in
 * place (at most once a second), elsewhere a line every 30 s. The trainer's
 * own lines go through Log(), which first ends a bar that is showing. */
class TrainingProgress : private std::streambuf
{
public:
  TrainingProgress()
    : m_Terminal(isatty(STDERR_FILENO))
    , m_Log(this)
  {}

  std::ostream &
  Log()
  {
    return m_Log;
  }

  void
  Draw(const itk::KDBrainExtractionTrainer::StepReport & report)
  {
    const auto now = std::chrono::steady_clock::now();
    const bool last = report.Step == report.NumberOfSteps;
    if (!last && m_Drawn && std::chrono::duration<double>(now - m_LastDrawn).count() < (m_Terminal ? 1.0 : 30.0))
    {
      return;
    }
    m_Drawn = true;
    m_LastDrawn = now;
    constexpr int      width = 24;
    const int          filled = static_cast<int>(width * report.Step / std::max<uint64_t>(report.NumberOfSteps, 1));
    const auto         left = static_cast<long long>(std::max(0.0, report.SecondsLeft));
    std::ostringstream line;
    line << "[" << ModelType::RoleToString(report.Role) << "] [" << std::string(filled, '#')
         << std::string(width - filled, '.') << "] step " << report.Step << "/" << report.NumberOfSteps << " loss "
         << std::fixed << std::setprecision(4) << report.Loss << " " << std::setprecision(3) << report.StepsPerSecond
         << " steps/s ETA " << left / 3600 << "h" << std::setw(2) << std::setfill('0') << left / 60 % 60 << "m"
         << std::setw(2) << left % 60 << "s";
    std::cerr << (m_Terminal ? "\r" : "") << line.str() << (m_Terminal && !last ? "   " : "\n") << std::flush;
    m_BarShowing = m_Terminal && !last;
  }

private:
  void
  EndBar()
  {
    if (m_BarShowing)
    {
      std::cerr << '\n';
      m_BarShowing = false;
    }
  }

  int
  overflow(int character) override
  {
    EndBar();
    return character == traits_type::eof() ? traits_type::not_eof(character)
                                           : std::cerr.rdbuf()->sputc(static_cast<char>(character));
  }

  std::streamsize
  xsputn(const char * text, std::streamsize count) override
  {
    EndBar();
    return std::cerr.rdbuf()->sputn(text, count);
  }

  int
  sync() override
  {
    return std::cerr.rdbuf()->pubsync();
  }

  const bool                            m_Terminal;
  bool                                  m_Drawn{ false };
  bool                                  m_BarShowing{ false };
  std::chrono::steady_clock::time_point m_LastDrawn;
  std::ostream                          m_Log;
};

/** The contrast families of --synthetic-contrasts (a comma list), or
 * \a defaults without it. */
std::vector<std::string>
SyntheticContrasts(const Arguments & arguments, const std::vector<std::string> & defaults)
{
  if (!arguments.Has("--synthetic-contrasts"))
  {
    return defaults;
  }
  std::vector<std::string> names;
  std::istringstream       list(arguments.Get("--synthetic-contrasts"));
  for (std::string name; std::getline(list, name, ',');)
  {
    names.push_back(name);
  }
  return names;
}

/** The training options common to kdbet train and kdbet protocol; the
 * width and the number of steps are read from the options named. */
itk::KDBrainExtractionTrainer::Options
TrainingOptions(const Arguments & arguments, ModelType::RoleEnum role, const std::string & widthOption,
                const std::string & stepsOption)
{
  itk::KDBrainExtractionTrainer::Options options;
  const bool                             teacher = role == ModelType::RoleEnum::Teacher;
  options.Role = role;
  options.NetworkArchitecture.Depth = arguments.GetCount("--depth", 3);
  options.NetworkArchitecture.BaseWidth = arguments.GetCount(widthOption, teacher ? 16 : 8);
  options.NetworkArchitecture.Normalization = arguments.Get("--norm", "batch");
  options.NetworkArchitecture.Dropout = arguments.GetNumber("--dropout", 0.0);
  options.NetworkArchitecture.DeepSupervision = arguments.Has("--deep-supervision");
  const double spacing = arguments.GetNumber("--spacing", 2.0);
  if (!(spacing > 0))
  {
    throw UsageError("--spacing must be positive");
  }
  options.PreprocessingContract.WorkingSpacing = { { spacing, spacing, spacing } };
  options.TeacherModelFile = arguments.Get("--teacher");
  options.DistillationWeight = teacher ? 0.0 : arguments.GetNumber("--alpha", 0.3);
  options.DistillationMode = arguments.Get("--distill", "image");
  options.NumberOfSteps = arguments.GetCount(stepsOption, 1000);
  options.BatchSize = arguments.GetCount("--batch", 4);
  options.PatchSize = arguments.GetCount("--patch", 64);
  options.LearningRate = arguments.GetNumber("--lr", 1e-3);
  options.WeightDecay = arguments.GetNumber("--weight-decay", 1e-5);
  options.Augment = !arguments.Has("--no-augment");
  options.Seed = arguments.GetCount("--seed", 1);
  options.Device = arguments.Get("--device", "auto");
  options.NumberOfThreads = arguments.GetCount("--threads", DefaultNumberOfThreads());
  if (arguments.Has("--loader-threads"))
  {
    options.NumberOfLoaderThreads = static_cast<int>(arguments.GetCount("--loader-threads", 0));
  }
  options.CheckpointFile = arguments.Get("--checkpoint");
  options.CheckpointInterval = arguments.GetCount("--checkpoint-every", 100);
  options.TimeLimitSeconds = arguments.GetNumber("--time-limit", 0.0);
  options.LogFile = arguments.Get("--log");
  options.SyntheticFraction = arguments.GetNumber("--synthetic", 0.0);
  options.SyntheticContrasts = SyntheticContrasts(arguments, options.SyntheticContrasts);
  options.MaximumIsotropicCoarsening = arguments.GetNumber("--max-coarsening", options.MaximumIsotropicCoarsening);
  options.IntensityRemappingFraction = arguments.GetNumber("--remap-intensities", options.IntensityRemappingFraction);
  options.AtrophyFraction = arguments.GetNumber("--atrophy", options.AtrophyFraction);
  options.FieldOfViewCropFraction = arguments.GetNumber("--crop-fov", options.FieldOfViewCropFraction);
  options.MaximumDeformation = arguments.GetNumber("--deform", options.MaximumDeformation);
  options.MaximumSliceThicknessFactor = arguments.GetNumber("--max-slab", options.MaximumSliceThicknessFactor);
  options.InitialModelFile = arguments.Get("--initialize");
  options.BatchNormRecalibrationBatches = arguments.GetCount("--bn-recalibration", 0);
  options.WeightAveragingSteps = arguments.GetCount("--average-last", 0);
  return options;
}

const char * ProtocolHelp = R"(Usage: kdbet protocol --manifest CSV --output-dir DIR [options]

The paper's evaluation: --splits random subject-level splits (--train-fraction of
the subjects for training, the rest held out). Per split: a teacher, the plain
UNet++ (a = 0), and two students distilled with weight --alpha, from the
teacher's image (the paper) and from its soft brain mask. Held-out Dice,
sensitivity, specificity, HD95 (students) and MAE, PSNR, SSIM (teacher) go to
DIR/report.json and DIR/report.md. Re-running continues an interrupted run.

  --splits N              number of splits (default 5)
  --train-fraction F      training share of the subjects (default 0.8)
  --teacher-steps N       teacher training steps (default 1000)
  --student-steps N       student training steps (default 1000)
  --teacher-width N       teacher base width (default 16)
  --student-width N       student base width (default 8)
  --alpha A               distillation weight of the distilled students (default 0.3)
  --variants LIST         students to train, comma list of unetpp-baseline, kd-image,
                          kd-soft-mask (default all three)
  and the training options of kdbet train: --depth --norm --dropout --deep-supervision
  --spacing --batch --patch --lr --weight-decay --no-augment --max-coarsening --seed
  --device --threads --loader-threads --checkpoint-every --time-limit (per model)
  --synthetic --synthetic-contrasts --remap-intensities --bn-recalibration --average-last
)";

int
Protocol(int argc, char * argv[])
{
  const Arguments arguments(argc, argv, { "--help", "--deep-supervision", "--no-augment" }, { { "-h", "--help" } });
  if (arguments.Has("--help"))
  {
    std::cout << ProtocolHelp;
    return 0;
  }
  arguments.RejectUnknown({ "--manifest",
                            "--output-dir",
                            "--splits",
                            "--train-fraction",
                            "--teacher-steps",
                            "--student-steps",
                            "--teacher-width",
                            "--student-width",
                            "--alpha",
                            "--variants",
                            "--depth",
                            "--norm",
                            "--dropout",
                            "--deep-supervision",
                            "--spacing",
                            "--batch",
                            "--patch",
                            "--lr",
                            "--weight-decay",
                            "--no-augment",
                            "--max-coarsening",
                            "--seed",
                            "--device",
                            "--threads",
                            "--loader-threads",
                            "--checkpoint-every",
                            "--time-limit",
                            "--synthetic",
                            "--synthetic-contrasts",
                            "--remap-intensities",
                            "--bn-recalibration",
                            "--average-last" });
  if (!arguments.Has("--manifest") || !arguments.Has("--output-dir"))
  {
    throw UsageError("--manifest and --output-dir are required (see kdbet protocol --help)");
  }
  itk::KDBrainExtractionEvaluationProtocol::Options options;
  options.Teacher = TrainingOptions(arguments, ModelType::RoleEnum::Teacher, "--teacher-width", "--teacher-steps");
  options.Student = TrainingOptions(arguments, ModelType::RoleEnum::Student, "--student-width", "--student-steps");
  const double alpha = arguments.GetNumber("--alpha", 0.3);
  for (auto & variant : options.Variants)
  {
    variant.DistillationWeight = variant.DistillationWeight > 0.0 ? alpha : 0.0;
  }
  if (arguments.Has("--variants"))
  {
    const auto all = options.Variants;
    options.Variants.clear();
    std::istringstream list(arguments.Get("--variants"));
    for (std::string name; std::getline(list, name, ',');)
    {
      const auto found = std::find_if(
        all.begin(), all.end(), [&name](const itk::KDBrainExtractionEvaluationProtocol::StudentVariant & variant) {
          return variant.Name == name;
        });
      if (found == all.end())
      {
        throw UsageError("unknown student variant '" + name + "' (use unetpp-baseline, kd-image, kd-soft-mask)");
      }
      options.Variants.push_back(*found);
    }
    if (options.Variants.empty())
    {
      throw UsageError("--variants needs at least one student");
    }
  }
  options.NumberOfSplits = arguments.GetCount("--splits", 5);
  options.TrainingFraction = arguments.GetNumber("--train-fraction", 0.8);
  options.Seed = arguments.GetCount("--seed", 1);
  options.OutputDirectory = arguments.Get("--output-dir");
  const auto        cases = itk::KDBrainExtractionTrainer::ReadManifest(arguments.Get("--manifest"));
  const std::string report = itk::KDBrainExtractionEvaluationProtocol::Run(cases, options, std::cerr);
  if (report.empty())
  {
    return 3;
  }
  std::cout << "wrote " << report << std::endl;
  return 0;
}

const char * TrainHelp = R"(Usage: kdbet train --manifest CSV --role teacher|student --output MODEL [options]
       kdbet train --role refiner --coarse-model STUDENT --label-maps LIST --output MODEL [options]

Trains a teacher (brain-only image) or a student (brain mask) UNet++ with the
same preprocessing as extraction. Student loss: (1-a) L_seg + a L_distill,
L_seg = MSE + (1 - SSIM) + (1 - Dice) against the mask, L_distill = MSE between
the student's probability and the teacher's output. --alpha 0 trains the plain
UNet++ baseline.

  --manifest CSV          columns image|t1, mask|brainmask, optional subject, labels|dlmuse,
                          modality; paths relative to the CSV (IXI cases.csv works as it is)
  --role R                teacher or student (default student)
  --output FILE           model file to write
  --teacher FILE          teacher model for distillation (student with --alpha > 0)
  --alpha A               distillation weight (default 0.3)
  --distill MODE          image (the paper's: teacher's brain image) or soft-mask
  --subjects LIST         train on these subjects only (comma list, or @file with one per line)
  --exclude LIST          leave these subjects out (comma list or @file)
  --validate LIST         subjects to report validation Dice/MAE on (comma list or @file)
  --steps N               optimizer steps (default 1000)
  --batch N               batch size (default 4)
  --patch N               cubic patch size in working voxels, 0 = whole volumes (default 64)
  --lr X                  Adam learning rate (default 1e-3)
  --weight-decay X        Adam weight decay (default 1e-5)
  --depth N               UNet++ depth (default 3)
  --width N               base width (default 8 student, 16 teacher)
  --norm batch|instance|none   normalisation (default batch)
  --dropout X             dropout after each node (default 0)
  --deep-supervision      heads on every top node
  --spacing MM            isotropic working spacing (default 2)
  --no-augment            no augmentation
  --max-coarsening F      resolution loss: all axes up to F times coarser (1-4, default
                          1.6); larger teaches heavily smoothed inputs such as templates
  --seed N                random seed (default 1)
  --device D              auto, cpu, cuda, cuda:N
  --threads N             CPU threads
  --loader-threads N      CPU threads preparing samples (synthesis, augmentation) in
                          parallel and a step ahead; same batches for any N (default:
                          0 on the CPU, the batch size on a GPU)
  --checkpoint FILE       checkpoint, written every --checkpoint-every steps (default 100)
                          and resumed from when present
  --time-limit S          stop after S seconds with a checkpoint (exit code 3)
  --log FILE              JSON lines, one per epoch
  --synthetic F           share of samples (of cases with labels) replaced by a synthetic
                          image painted from the case's tissue classes (default 0)
  --synthetic-contrasts L contrast families of those, comma list of t1w, t2w, pdw, flair,
                          random (default t1w,t2w,pdw,random)
  --label-maps LIST       whole-head label maps in FreeSurfer codes (comma list, or @file
                          with one per line), e.g. ../shared/data/synthseg-head-labels:
                          subjects without an image, every sample painted in a synthetic
                          contrast; brain mask by KDBrainExtractionWholeHeadLabels' rule
  --label-map-repeat N    each label map counts as N cases per epoch (default 1)
  --atrophy F             share of synthetic samples aged first: outer cortex to CSF (the
                          mask shrinks), sulci and ventricles widened (default 0)
  --crop-fov F            share of samples whose field of view is cut across S-I or A-P,
                          from outside the brain to 24 mm into it (default 0)
  --deform MM             random smooth nonlinear deformation of half the augmented
                          samples, displacements up to MM (default 0: off)
  --max-slab F            thickest slices of the resolution loss, in working voxels
                          (default 3: 6 mm on the 2 mm grid)
  --remap-intensities F   share of the other (real) samples shown in a random contrast:
                          intensities through a random piecewise-linear curve (default 0)
  --initialize FILE       start from this model's weights (same role and architecture)
  --bn-recalibration N    after training, re-estimate the batch-norm statistics as plain
                          averages over N more training batches (default 0: keep the
                          moving averages, which follow the last ~10 batches); with
                          --steps 0 and --initialize, re-estimates those of a trained model
  --average-last N        return the mean of the weights after each of the last N steps
                          (stochastic weight averaging; default 0: the last step's); use
                          with --bn-recalibration, since the statistics follow the weights

Refiner (the fine stage, KDBrainExtractionBoundaryRefinement): heads painted from
the --label-maps at their 1 mm, each run through the --coarse-model student as
extraction runs it; points of the band around its boundary, with their label in
the maps' exact masks, train a perceptron (--depth hidden layers of --width units,
default 2 and 48) by binary cross-entropy. Also: --steps (default 4000), --batch
(points per step, default 4096), --lr, --weight-decay, --seed, --device, --threads,
--log, --synthetic-contrasts (default t1w,t2w,pdw,flair,random), --max-slab (the
painting's thickest slices in map voxels, default 5), --spacing (fine grid, default 1).
  --coarse-model FILE     the student whose boundary is refined
  --heads-per-map N       heads painted per label map (default 8)
  --points-per-head N     band points drawn per head (default 20000)
  --validate-label-maps L label maps of other subjects whose heads (one per contrast
                          family) report the band error rates of coarse and refined
)";

std::set<std::string>
ReadSubjectList(const std::string & text)
{
  std::set<std::string> subjects;
  std::string           content = text;
  if (!text.empty() && text[0] == '@')
  {
    std::ifstream file(text.substr(1));
    if (!file)
    {
      throw UsageError(text.substr(1) + ": cannot read the subject list");
    }
    content.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  std::string subject;
  for (char c : content + "\n")
  {
    if (c == ',' || c == '\n' || c == '\r' || c == ' ')
    {
      if (!subject.empty())
      {
        subjects.insert(subject);
      }
      subject.clear();
    }
    else
    {
      subject += c;
    }
  }
  return subjects;
}

/** Whole-head label maps named in \a list (comma list or @file), as cases
 * without an image; \a option names the list in errors. */
std::vector<itk::KDBrainExtractionTrainer::Case>
ReadLabelMapCases(const std::string & list, const std::string & option)
{
  std::vector<itk::KDBrainExtractionTrainer::Case> cases;
  for (const auto & labels : ReadSubjectList(list))
  {
    if (!itksys::SystemTools::FileExists(labels, true))
    {
      throw UsageError(labels + ": no such label map (" + option + ")");
    }
    itk::KDBrainExtractionTrainer::Case item;
    item.Subject = itksys::SystemTools::GetFilenameWithoutExtension(labels);
    item.Labels = labels;
    item.Modality = "labels";
    cases.push_back(item);
  }
  return cases;
}

/** kdbet train --role refiner. */
int
TrainRefiner(const Arguments & arguments, const std::string & commandLine)
{
  if (!arguments.Has("--coarse-model") || !arguments.Has("--label-maps") || !arguments.Has("--output"))
  {
    throw UsageError("a refiner needs --coarse-model, --label-maps and --output (see kdbet train --help)");
  }
  itk::KDBrainExtractionTrainer::RefinerOptions options;
  options.CoarseModelFile = arguments.Get("--coarse-model");
  options.NetworkArchitecture.Depth = arguments.GetCount("--depth", options.NetworkArchitecture.Depth);
  options.NetworkArchitecture.BaseWidth = arguments.GetCount("--width", options.NetworkArchitecture.BaseWidth);
  options.FineSpacing = arguments.GetNumber("--spacing", options.FineSpacing);
  options.HeadsPerLabelMap = arguments.GetCount("--heads-per-map", options.HeadsPerLabelMap);
  options.PointsPerHead = arguments.GetCount("--points-per-head", options.PointsPerHead);
  options.MaximumSliceThicknessFactor = arguments.GetNumber("--max-slab", options.MaximumSliceThicknessFactor);
  if (!(options.MaximumSliceThicknessFactor >= 1.0 && options.MaximumSliceThicknessFactor <= 10.0))
  {
    throw UsageError("--max-slab must be between 1 and 10 for a refiner");
  }
  options.SyntheticContrasts = SyntheticContrasts(arguments, options.SyntheticContrasts);
  options.NumberOfSteps = arguments.GetCount("--steps", options.NumberOfSteps);
  options.BatchSize = arguments.GetCount("--batch", options.BatchSize);
  options.LearningRate = arguments.GetNumber("--lr", options.LearningRate);
  options.WeightDecay = arguments.GetNumber("--weight-decay", options.WeightDecay);
  options.Seed = arguments.GetCount("--seed", options.Seed);
  options.Device = arguments.Get("--device", "auto");
  options.NumberOfThreads = arguments.GetCount("--threads", DefaultNumberOfThreads());
  options.LogFile = arguments.Get("--log");
  options.ValidationCases = ReadLabelMapCases(arguments.Get("--validate-label-maps"), "--validate-label-maps");
  const auto labelMaps = ReadLabelMapCases(arguments.Get("--label-maps"), "--label-maps");
  const auto model = itk::KDBrainExtractionTrainer::TrainBoundaryRefiner(labelMaps, options, std::cerr);
  model->SetMetadata("training.command", commandLine);
  model->SetMetadata("kdbet.version", KDBrainExtraction_VERSION);
  model->Save(arguments.Get("--output"));
  std::cout << "wrote refiner model " << arguments.Get("--output") << " (checksum " << model->GetChecksum() << ", "
            << model->GetNumberOfParameters() << " parameters)" << std::endl;
  return 0;
}

int
Train(int argc, char * argv[], const std::string & commandLine)
{
  const Arguments arguments(argc, argv, { "--help", "--deep-supervision", "--no-augment" }, { { "-h", "--help" } });
  if (arguments.Has("--help"))
  {
    std::cout << TrainHelp;
    return 0;
  }
  arguments.RejectUnknown({ "--manifest",
                            "--role",
                            "--output",
                            "--teacher",
                            "--alpha",
                            "--distill",
                            "--subjects",
                            "--exclude",
                            "--validate",
                            "--steps",
                            "--batch",
                            "--patch",
                            "--lr",
                            "--weight-decay",
                            "--depth",
                            "--width",
                            "--norm",
                            "--dropout",
                            "--deep-supervision",
                            "--spacing",
                            "--no-augment",
                            "--max-coarsening",
                            "--seed",
                            "--device",
                            "--threads",
                            "--loader-threads",
                            "--checkpoint",
                            "--checkpoint-every",
                            "--time-limit",
                            "--log",
                            "--synthetic",
                            "--synthetic-contrasts",
                            "--remap-intensities",
                            "--label-maps",
                            "--label-map-repeat",
                            "--atrophy",
                            "--crop-fov",
                            "--deform",
                            "--max-slab",
                            "--initialize",
                            "--bn-recalibration",
                            "--average-last",
                            "--coarse-model",
                            "--heads-per-map",
                            "--points-per-head",
                            "--validate-label-maps" });
  const std::string role = arguments.Get("--role", "student");
  if (role == "refiner")
  {
    return TrainRefiner(arguments, commandLine);
  }
  if (!arguments.Has("--manifest") || !arguments.Has("--output"))
  {
    throw UsageError("--manifest and --output are required (see kdbet train --help)");
  }
  if (role != "teacher" && role != "student")
  {
    throw UsageError("--role must be teacher, student or refiner");
  }
  auto options = TrainingOptions(
    arguments, role == "teacher" ? ModelType::RoleEnum::Teacher : ModelType::RoleEnum::Student, "--width", "--steps");
  const std::string outputDirectory = itksys::SystemTools::GetFilenamePath(arguments.Get("--output"));
  if (!outputDirectory.empty() && !itksys::SystemTools::FileIsDirectory(outputDirectory))
  {
    throw UsageError(arguments.Get("--output") + ": the output folder does not exist");
  }

  // Whole-head label maps: subjects without an image, each listed
  // --label-map-repeat times (weighted up against the manifest's cases).
  std::vector<itk::KDBrainExtractionTrainer::Case> labelMaps;
  const unsigned int                               repeat = arguments.GetCount("--label-map-repeat", 1);
  for (const auto & item : ReadLabelMapCases(arguments.Get("--label-maps"), "--label-maps"))
  {
    labelMaps.insert(labelMaps.end(), std::max(1u, repeat), item);
  }
  const auto all = itk::KDBrainExtractionTrainer::ReadManifest(arguments.Get("--manifest"));
  const auto include = ReadSubjectList(arguments.Get("--subjects"));
  const auto exclude = ReadSubjectList(arguments.Get("--exclude"));
  const auto validate = ReadSubjectList(arguments.Get("--validate"));
  std::vector<itk::KDBrainExtractionTrainer::Case> training;
  for (const auto & item : all)
  {
    if (validate.count(item.Subject))
    {
      options.ValidationCases.push_back(item);
    }
    if ((include.empty() || include.count(item.Subject)) && !exclude.count(item.Subject) &&
        !validate.count(item.Subject))
    {
      training.push_back(item);
    }
  }
  if (training.empty())
  {
    throw UsageError("no training cases are left after --subjects/--exclude/--validate");
  }
  training.insert(training.end(), labelMaps.begin(), labelMaps.end());
  TrainingProgress progress;
  options.StepCallback = [&progress](const itk::KDBrainExtractionTrainer::StepReport & report) {
    progress.Draw(report);
  };
  const auto model = itk::KDBrainExtractionTrainer::Train(training, options, progress.Log());
  if (model.IsNull())
  {
    return 3;
  }
  model->SetMetadata("training.command", commandLine);
  model->SetMetadata("training.manifest", arguments.Get("--manifest"));
  model->SetMetadata("kdbet.version", KDBrainExtraction_VERSION);
  model->Save(arguments.Get("--output"));
  std::cout << "wrote " << role << " model " << arguments.Get("--output") << " (checksum " << model->GetChecksum()
            << ", " << model->GetNumberOfParameters() << " parameters)" << std::endl;
  return 0;
}


int
Evaluate(int argc, char * argv[])
{
  std::vector<std::string> files;
  bool                     json = false;
  double                   threshold = 0.5;
  for (int i = 0; i < argc; ++i)
  {
    const std::string argument = argv[i];
    if (argument == "--help" || argument == "-h")
    {
      std::cout << "Usage: kdbet evaluate PREDICTED_MASK REFERENCE_MASK [--json] [--threshold T]\n\n"
                   "Dice, sensitivity, specificity, 95th-percentile Hausdorff distance (mm) and volumes (ml)\n"
                   "of a mask against a reference on the same grid. Voxels >= T (default 0.5) are inside:\n"
                   "0/1 masks, label maps and probability maps (such as SPM's brainmask) alike.\n";
      return 0;
    }
    if (argument == "--json")
    {
      json = true;
    }
    else if (argument == "--threshold")
    {
      if (i + 1 >= argc)
      {
        throw UsageError("--threshold needs a value");
      }
      char * end = nullptr;
      threshold = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || !(threshold > 0.0))
      {
        throw UsageError(std::string("--threshold needs a positive number, got '") + argv[i] + "'");
      }
    }
    else
    {
      files.push_back(argument);
    }
  }
  if (files.size() != 2)
  {
    throw UsageError("evaluate needs a predicted and a reference mask (see kdbet evaluate --help)");
  }
  const auto predicted = ReadMaskAsBinary(files[0], threshold);
  const auto reference = ReadMaskAsBinary(files[1], threshold);
  auto       metric = itk::HybridLossMetric<ImageType>::New();
  metric->SetPredictionImage(predicted);
  metric->SetTargetImage(reference);
  metric->SetDataRange(1.0);
  metric->Update();
  auto volume = [](const ImageType * mask) {
    double voxels = 0;
    for (std::size_t i = 0; i < mask->GetBufferedRegion().GetNumberOfPixels(); ++i)
    {
      voxels += mask->GetBufferPointer()[i];
    }
    const auto & spacing = mask->GetSpacing();
    return voxels * spacing[0] * spacing[1] * spacing[2] / 1000.0;
  };
  const std::vector<std::pair<std::string, double>> values{
    { "dice", metric->GetDice() },
    { "sensitivity", metric->GetSensitivity() },
    { "specificity", metric->GetSpecificity() },
    { "hd95_mm", metric->GetHausdorffDistance95() },
    { "predicted_ml", volume(predicted) },
    { "reference_ml", volume(reference) },
  };
  std::cout << std::setprecision(6);
  if (json)
  {
    std::cout << "{\"predicted\":\"" << files[0] << "\",\"reference\":\"" << files[1] << "\"";
    for (const auto & value : values)
    {
      // JSON has no infinity: an empty mask's HD95 is null.
      std::cout << ",\"" << value.first << "\":";
      if (std::isfinite(value.second))
      {
        std::cout << value.second;
      }
      else
      {
        std::cout << "null";
      }
    }
    std::cout << "}" << std::endl;
  }
  else
  {
    for (const auto & value : values)
    {
      std::cout << value.first << ": " << value.second << "\n";
    }
  }
  return 0;
}

int
Info(int argc, char * argv[])
{
  if (argc != 1 || std::string(argv[0]) == "--help" || std::string(argv[0]) == "-h")
  {
    std::cout
      << "Usage: kdbet info MODEL\n\nRole, architecture, preprocessing, provenance and checksum of a model file.\n";
    return argc == 1 ? 0 : 2;
  }
  auto model = ModelType::New();
  model->Load(argv[0]);
  const auto &       a = model->GetArchitecture();
  const auto &       c = model->GetContract();
  std::ostringstream architecture;
  if (model->GetRole() == ModelType::RoleEnum::Refiner)
  {
    architecture << "perceptron of boundary points, " << a.Depth << " hidden layers of " << a.BaseWidth << " units";
  }
  else
  {
    architecture << "UNet++ 3D, depth " << a.Depth << ", base width " << a.BaseWidth << ", " << a.Normalization
                 << " normalization, dropout " << a.Dropout << ", deep supervision "
                 << (a.DeepSupervision ? "on" : "off");
  }
  std::cout << "file: " << model->GetFileName() << "\n"
            << "role: " << ModelType::RoleToString(model->GetRole()) << "\n"
            << "architecture: " << architecture.str() << "\n"
            << "parameters: " << model->GetNumberOfParameters() << "\n"
            << "working spacing: " << c.WorkingSpacing[0] << " x " << c.WorkingSpacing[1] << " x "
            << c.WorkingSpacing[2] << " mm, axis-aligned (LPS), size multiple " << c.SizeMultiple << "\n"
            << "intensity: percentiles " << c.LowerPercentile << " .. " << c.UpperPercentile << " to [0, 1]\n"
            << "checksum (FNV-1a 64): " << model->GetChecksum() << "\n";
  for (const auto & entry : model->GetAllMetadata())
  {
    std::cout << entry.first << ": " << entry.second << "\n";
  }
  return 0;
}

int
Average(int argc, char * argv[], const std::string & commandLine)
{
  std::vector<std::string> inputs;
  std::string              output;
  for (int i = 0; i < argc; ++i)
  {
    const std::string argument = argv[i];
    if (argument == "--help" || argument == "-h")
    {
      std::cout << "Usage: kdbet average --output MODEL MODEL MODEL [MODEL...]\n\n"
                   "Writes the mean of the weights of models fine-tuned from one starting model (a uniform\n"
                   "model soup): one network that removes much of what a single run owes to its seed. All\n"
                   "must share role, architecture and preprocessing. Re-estimate the batch-norm statistics\n"
                   "of the result: kdbet train --steps 0 --initialize MODEL --bn-recalibration 200 ...\n";
      return 0;
    }
    if (argument == "--output")
    {
      if (i + 1 >= argc)
      {
        throw UsageError("--output needs a file name");
      }
      output = argv[++i];
    }
    else if (!argument.empty() && argument[0] == '-')
    {
      throw UsageError("unknown option '" + argument + "' (see kdbet average --help)");
    }
    else
    {
      inputs.push_back(argument);
    }
  }
  if (output.empty() || inputs.size() < 2)
  {
    throw UsageError("kdbet average needs --output and at least two models (see kdbet average --help)");
  }
  std::vector<ModelType::ConstPointer> models;
  for (const auto & input : inputs)
  {
    auto model = ModelType::New();
    model->Load(input);
    models.emplace_back(model);
  }
  auto averaged = ModelType::New();
  averaged->AverageWeightsOf(models);
  averaged->SetMetadata("average.command", commandLine);
  averaged->Save(output);
  std::cout << output << ": mean of " << models.size() << " models, checksum " << averaged->GetChecksum() << "\n";
  return 0;
}

const char * MainHelp = R"(Usage: kdbet COMMAND [options]

Brain extraction (skull stripping) of 3D head MRI with knowledge-distilled UNet++ networks.

Commands:
  extract   brain mask and brain-only image of a head volume (kdbet extract --help)
  bids      a BIDS dataset's anatomical scans into BIDS derivatives, the BIDS Apps
            way: kdbet bids BIDS_DIR OUTPUT_DIR participant|group (kdbet bids --help)
  train     train a teacher or student model (kdbet train --help)
  protocol  the paper's evaluation: repeated splits, teacher, baseline and KD students (kdbet protocol --help)
  evaluate  Dice, sensitivity, specificity, HD95 of a mask against a reference
  info      describe a model file
  average   mean of the weights of fine-tuned models (kdbet average --help)
  --version print the version
)";

/** An interrupted or killed-by-request run leaves no temporary files: the
 * staged outputs are removed, then the signal takes its default course (the
 * exit status still says which signal ended the run). */
extern "C" void
RemoveStagedFilesAndDie(int signalNumber)
{
  itk::KDBrainExtractionOutputFile::RemoveStagedFiles();
  std::signal(signalNumber, SIG_DFL);
  std::raise(signalNumber);
}
} // namespace

int
main(int argc, char * argv[])
{
  for (const int signalNumber : { SIGINT, SIGTERM, SIGHUP })
  {
    std::signal(signalNumber, RemoveStagedFilesAndDie);
  }
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")
  {
    std::cout << MainHelp;
    return argc < 2 ? 2 : 0;
  }
  itk::KDBrainExtractionTorchModel::RetainFreedMemory();
  const std::string command = argv[1];
  std::string       commandLine = "kdbet";
  for (int i = 1; i < argc; ++i)
  {
    commandLine += std::string(" ") + argv[i];
  }
  try
  {
    if (command == "--version" || command == "version")
    {
      std::cout << "kdbet " << KDBrainExtraction_VERSION << " (LibTorch, CUDA "
                << (ModelType::IsCudaAvailable() ? "available" : "not available") << ")" << std::endl;
      return 0;
    }
    if (command == "__worker")
    {
      return kdbet::Worker(argc - 2, argv + 2);
    }
    if (command == "extract")
    {
      return kdbet::Extract(argc - 2, argv + 2);
    }
    if (command == "bids")
    {
      return kdbet::Bids(argc - 2, argv + 2, commandLine);
    }
    if (command == "train")
    {
      return Train(argc - 2, argv + 2, commandLine);
    }
    if (command == "protocol")
    {
      return Protocol(argc - 2, argv + 2);
    }
    if (command == "evaluate")
    {
      return Evaluate(argc - 2, argv + 2);
    }
    if (command == "info")
    {
      return Info(argc - 2, argv + 2);
    }
    if (command == "average")
    {
      return Average(argc - 2, argv + 2, commandLine);
    }
    throw UsageError("unknown command '" + command + "' (see kdbet --help)");
  }
  catch (const kdbet::UsageError & error)
  {
    std::cerr << "kdbet: error: " << error.what() << std::endl;
    return 2;
  }
  catch (const itk::ExceptionObject & error)
  {
    std::cerr << "kdbet: error: " << itk::KDBrainExtractionInputFile::DescribeError(error) << std::endl;
    return 1;
  }
  catch (const std::exception & error)
  {
    std::string message = error.what();
    std::cerr << "kdbet: error: " << message.substr(0, message.find('\n')) << std::endl;
    return 1;
  }
}
