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
#include "itkKDBrainExtractionEvaluationProtocol.h"

#include "itkImageFileReader.h"
#include "itkKDBrainExtractionImageMetrics.h"
#include "itkKDBrainExtractionOutputFile.h"
#include "itkKDStudentMaskFilter.h"
#include "itkKDTeacherImageFilter.h"
#include "itksys/SystemTools.hxx"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

namespace itk
{
namespace
{
using ImageType = KDBrainExtractionPreprocessing::ImageType;
using MaskImageType = KDBrainExtractionPreprocessing::MaskImageType;
using Case = KDBrainExtractionTrainer::Case;
using Measures = std::map<std::string, double>;

/** One evaluation: which split, subject and model, and its measures. */
struct Evaluation
{
  unsigned int Split;
  std::string  Subject;
  std::string  Model;
  Measures     Values;
};

ImageType::Pointer
ReadFloatImage(const std::string & fileName)
{
  auto reader = ImageFileReader<ImageType>::New();
  reader->SetFileName(fileName);
  reader->Update();
  return reader->GetOutput();
}

/** The reference mask (any non-zero voxel) as 0/1 floats. */
ImageType::Pointer
ReadReferenceMask(const std::string & fileName)
{
  auto mask = ReadFloatImage(fileName);
  for (std::size_t i = 0; i < mask->GetBufferedRegion().GetNumberOfPixels(); ++i)
  {
    mask->GetBufferPointer()[i] = mask->GetBufferPointer()[i] != 0.0f ? 1.0f : 0.0f;
  }
  return mask;
}

Measures
EvaluateStudent(KDBrainExtractionTorchModel * model, const ImageType * image, const ImageType * reference)
{
  auto filter = KDStudentMaskFilter<ImageType, ImageType>::New();
  filter->SetModel(model);
  filter->SetInput(image);
  filter->Update();
  KDBrainExtractionImageMetrics::Options options;
  options.DataRange = 1.0;
  const auto values = KDBrainExtractionImageMetrics::Compute(filter->GetMaskOutput(), reference, options);
  return { { "dice", values.Dice },
           { "sensitivity", values.Sensitivity },
           { "specificity", values.Specificity },
           { "hd95_mm", values.HausdorffDistance95 } };
}

/** MAE, PSNR and SSIM of the teacher's brain-only image, in the normalised
 * units of the input's percentile window, as the network sees them. */
Measures
EvaluateTeacher(KDBrainExtractionTorchModel * model, const ImageType * image, const ImageType * reference)
{
  auto filter = KDTeacherImageFilter<ImageType, ImageType>::New();
  filter->SetModel(model);
  filter->SetInput(image);
  filter->Update();
  const auto window = KDBrainExtractionPreprocessing::ComputeIntensityWindow(image, model->GetContract());
  auto       normalize = [&window](const ImageType * source, const ImageType * mask) {
    auto copy = ImageType::New();
    copy->CopyInformation(source);
    copy->SetRegions(source->GetLargestPossibleRegion());
    copy->Allocate();
    std::copy_n(source->GetBufferPointer(), source->GetBufferedRegion().GetNumberOfPixels(), copy->GetBufferPointer());
    KDBrainExtractionPreprocessing::NormalizeIntensities(copy, window);
    if (mask != nullptr)
    {
      for (std::size_t i = 0; i < copy->GetBufferedRegion().GetNumberOfPixels(); ++i)
      {
        copy->GetBufferPointer()[i] *= mask->GetBufferPointer()[i];
      }
    }
    return copy;
  };
  KDBrainExtractionImageMetrics::Options options;
  options.DataRange = 1.0;
  const auto values = KDBrainExtractionImageMetrics::Compute(
    normalize(filter->GetOutput(), nullptr), normalize(image, reference), options);
  return { { "mae", values.MeanAbsoluteError },
           { "psnr_db", values.PeakSignalToNoiseRatio },
           { "ssim", values.StructuralSimilarity } };
}

/** Mean and sample standard deviation of the finite values. */
std::pair<double, double>
MeanAndDeviation(const std::vector<double> & values)
{
  std::vector<double> finite;
  std::copy_if(values.begin(), values.end(), std::back_inserter(finite), [](double v) { return std::isfinite(v); });
  if (finite.empty())
  {
    return { std::nan(""), std::nan("") };
  }
  const double mean = std::accumulate(finite.begin(), finite.end(), 0.0) / finite.size();
  double       squares = 0.0;
  for (const double v : finite)
  {
    squares += (v - mean) * (v - mean);
  }
  return { mean, finite.size() > 1 ? std::sqrt(squares / (finite.size() - 1)) : 0.0 };
}

std::string
JsonNumber(double value)
{
  if (!std::isfinite(value))
  {
    return "null";
  }
  std::ostringstream text;
  text << std::setprecision(8) << value;
  return text.str();
}

/** A finished split's evaluations, one measure per line, so that a resumed
 * run (or another machine, without the split's model files) can skip it. */
void
WriteSplitEvaluations(const std::vector<Evaluation> & evaluations, unsigned int split, const std::string & fileName)
{
  std::ostringstream csv;
  csv << "split,subject,model,measure,value\n" << std::setprecision(17);
  for (const auto & evaluation : evaluations)
  {
    if (evaluation.Split != split)
    {
      continue;
    }
    for (const auto & value : evaluation.Values)
    {
      csv << evaluation.Split << ',' << evaluation.Subject << ',' << evaluation.Model << ',' << value.first << ','
          << value.second << '\n';
    }
  }
  KDBrainExtractionOutputFile::WriteBytes(csv.str(), fileName, "the split's evaluations");
}

std::vector<Evaluation>
ReadSplitEvaluations(const std::string & fileName)
{
  std::ifstream csv(fileName);
  std::string   line;
  std::getline(csv, line);
  if (line != "split,subject,model,measure,value")
  {
    itkGenericExceptionMacro(<< fileName << ": not a split evaluation file (header '" << line << "')");
  }
  std::vector<Evaluation> evaluations;
  while (std::getline(csv, line))
  {
    std::vector<std::string> fields;
    std::istringstream       row(line);
    for (std::string field; std::getline(row, field, ',');)
    {
      fields.push_back(field);
    }
    if (fields.size() != 5)
    {
      itkGenericExceptionMacro(<< fileName << ": malformed line '" << line << "'");
    }
    const auto split = static_cast<unsigned int>(std::stoul(fields[0]));
    const bool sameAsLast = !evaluations.empty() && evaluations.back().Split == split &&
                            evaluations.back().Subject == fields[1] && evaluations.back().Model == fields[2];
    if (!sameAsLast)
    {
      evaluations.push_back({ split, fields[1], fields[2], {} });
    }
    evaluations.back().Values[fields[3]] = std::stod(fields[4]); // also reads nan and inf
  }
  return evaluations;
}

KDBrainExtractionTorchModel::Pointer
TrainOrLoad(const std::string & fileName, const std::vector<Case> & training, KDBrainExtractionTrainer::Options options,
            const std::string & name, std::ostream & log)
{
  auto model = KDBrainExtractionTorchModel::New();
  if (itksys::SystemTools::FileExists(fileName, true))
  {
    log << "Reusing " << fileName << std::endl;
    model->Load(fileName);
    return model;
  }
  const std::string stem = fileName.substr(0, fileName.size() - std::string(".kdbm").size());
  options.CheckpointFile = stem + ".ckpt";
  options.LogFile = stem + ".jsonl";
  log << "Training " << name << " on " << training.size() << " subjects" << std::endl;
  const auto trained = KDBrainExtractionTrainer::Train(training, options, log);
  if (trained.IsNull())
  {
    return nullptr;
  }
  trained->SetMetadata("protocol.model", name);
  trained->Save(fileName);
  itksys::SystemTools::RemoveFile(options.CheckpointFile);
  model->Load(fileName);
  return model;
}
} // namespace

std::string
KDBrainExtractionEvaluationProtocol::Run(const std::vector<Case> & cases, const Options & options, std::ostream & log)
{
  if (cases.size() < 2 || options.NumberOfSplits == 0)
  {
    itkGenericExceptionMacro(<< "the protocol needs at least 2 subjects and 1 split");
  }
  if (!(options.TrainingFraction > 0.0 && options.TrainingFraction < 1.0))
  {
    itkGenericExceptionMacro(<< "the training fraction must be between 0 and 1");
  }
  if (options.OutputDirectory.empty() || !itksys::SystemTools::MakeDirectory(options.OutputDirectory))
  {
    itkGenericExceptionMacro(<< "cannot create the output folder '" << options.OutputDirectory << "'");
  }
  const std::size_t numberOfTraining = std::clamp<std::size_t>(
    static_cast<std::size_t>(std::llround(options.TrainingFraction * cases.size())), 1, cases.size() - 1);
  std::vector<Evaluation> evaluations;
  for (unsigned int split = 0; split < options.NumberOfSplits; ++split)
  {
    std::vector<std::size_t> order(cases.size());
    std::iota(order.begin(), order.end(), 0);
    std::seed_seq   sequence{ static_cast<uint64_t>(options.Seed), static_cast<uint64_t>(split), uint64_t{ 0x5911 } };
    std::mt19937_64 generator(sequence);
    std::shuffle(order.begin(), order.end(), generator);
    std::vector<Case> training;
    std::vector<Case> testing;
    for (std::size_t i = 0; i < order.size(); ++i)
    {
      (i < numberOfTraining ? training : testing).push_back(cases[order[i]]);
    }
    const std::string directory = options.OutputDirectory + "/split-" + std::to_string(split);
    itksys::SystemTools::MakeDirectory(directory);
    {
      std::ofstream subjects(directory + "/subjects.csv");
      subjects << "subject,set\n";
      for (const auto & item : training)
      {
        subjects << item.Subject << ",train\n";
      }
      for (const auto & item : testing)
      {
        subjects << item.Subject << ",test\n";
      }
    }
    log << "Split " << split + 1 << "/" << options.NumberOfSplits << ": " << training.size() << " training, "
        << testing.size() << " held-out subjects" << std::endl;
    const std::string evaluationsFile = directory + "/evaluations.csv";
    if (itksys::SystemTools::FileExists(evaluationsFile, true))
    {
      log << "Reusing " << evaluationsFile << std::endl;
      const auto stored = ReadSplitEvaluations(evaluationsFile);
      evaluations.insert(evaluations.end(), stored.begin(), stored.end());
      continue;
    }

    auto teacherOptions = options.Teacher;
    teacherOptions.Role = KDBrainExtractionTorchModel::RoleEnum::Teacher;
    teacherOptions.DistillationWeight = 0.0;
    const std::string teacherFile = directory + "/teacher.kdbm";
    const auto        teacher = TrainOrLoad(teacherFile, training, teacherOptions, "teacher", log);
    if (teacher.IsNull())
    {
      return {};
    }
    std::vector<std::pair<std::string, KDBrainExtractionTorchModel::Pointer>> students;
    for (const auto & variant : options.Variants)
    {
      auto studentOptions = options.Student;
      studentOptions.Role = KDBrainExtractionTorchModel::RoleEnum::Student;
      studentOptions.DistillationWeight = variant.DistillationWeight;
      studentOptions.DistillationMode = variant.DistillationMode;
      studentOptions.TeacherModelFile = variant.DistillationWeight > 0.0 ? teacherFile : std::string();
      const auto student =
        TrainOrLoad(directory + "/" + variant.Name + ".kdbm", training, studentOptions, variant.Name, log);
      if (student.IsNull())
      {
        return {};
      }
      students.emplace_back(variant.Name, student);
    }

    for (const auto & item : testing)
    {
      const auto image = ReadFloatImage(item.Image);
      const auto reference = ReadReferenceMask(item.Mask);
      evaluations.push_back({ split, item.Subject, "teacher", EvaluateTeacher(teacher, image, reference) });
      for (const auto & student : students)
      {
        evaluations.push_back(
          { split, item.Subject, student.first, EvaluateStudent(student.second, image, reference) });
      }
    }
    WriteSplitEvaluations(evaluations, split, evaluationsFile);
  }

  // Summaries: mean and standard deviation over all held-out evaluations.
  std::vector<std::string>                                          modelOrder{ "teacher" };
  std::map<std::string, std::map<std::string, std::vector<double>>> pooled;
  for (const auto & variant : options.Variants)
  {
    modelOrder.push_back(variant.Name);
  }
  for (const auto & evaluation : evaluations)
  {
    for (const auto & value : evaluation.Values)
    {
      pooled[evaluation.Model][value.first].push_back(value.second);
    }
  }

  std::ofstream json(options.OutputDirectory + "/report.json");
  json << "{\n  \"protocol\": {\"splits\": " << options.NumberOfSplits
       << ", \"training_fraction\": " << options.TrainingFraction << ", \"seed\": " << options.Seed
       << ", \"subjects\": " << cases.size() << ", \"training_subjects_per_split\": " << numberOfTraining
       << ", \"teacher_steps\": " << options.Teacher.NumberOfSteps
       << ", \"student_steps\": " << options.Student.NumberOfSteps << "},\n  \"summary\": {";
  bool firstModel = true;
  for (const auto & model : modelOrder)
  {
    json << (firstModel ? "\n" : ",\n") << "    \"" << model << "\": {";
    firstModel = false;
    bool firstMeasure = true;
    for (const auto & measure : pooled[model])
    {
      const auto summary = MeanAndDeviation(measure.second);
      json << (firstMeasure ? "" : ", ") << "\"" << measure.first << "\": {\"mean\": " << JsonNumber(summary.first)
           << ", \"sd\": " << JsonNumber(summary.second) << ", \"n\": " << measure.second.size() << "}";
      firstMeasure = false;
    }
    json << "}";
  }
  json << "\n  },\n  \"evaluations\": [";
  for (std::size_t i = 0; i < evaluations.size(); ++i)
  {
    const auto & evaluation = evaluations[i];
    json << (i ? ",\n" : "\n") << "    {\"split\": " << evaluation.Split << ", \"subject\": \"" << evaluation.Subject
         << "\", \"model\": \"" << evaluation.Model << "\"";
    for (const auto & value : evaluation.Values)
    {
      json << ", \"" << value.first << "\": " << JsonNumber(value.second);
    }
    json << "}";
  }
  json << "\n  ]\n}\n";

  auto cell = [&pooled](const std::string & model, const std::string & measure, int precision) {
    const auto         summary = MeanAndDeviation(pooled[model][measure]);
    std::ostringstream text;
    text << std::fixed << std::setprecision(precision) << summary.first << " ± " << summary.second;
    return text.str();
  };
  const std::string markdownFile = options.OutputDirectory + "/report.md";
  std::ofstream     markdown(markdownFile);
  markdown << "# KDBrainExtraction evaluation\n\n"
           << options.NumberOfSplits << " random subject-level splits, " << numberOfTraining << " training and "
           << cases.size() - numberOfTraining << " held-out subjects each (seed " << options.Seed
           << "); mean ± sd over all held-out evaluations.\n\n"
           << "## Students (brain mask)\n\n"
           << "| Model | Dice | Sensitivity | Specificity | HD95 (mm) |\n|---|---|---|---|---|\n";
  std::string bestStudent;
  double      bestDice = -1.0;
  for (const auto & variant : options.Variants)
  {
    markdown << "| " << variant.Name << " (a = " << variant.DistillationWeight
             << (variant.DistillationWeight > 0.0 ? ", " + variant.DistillationMode : std::string()) << ") | "
             << cell(variant.Name, "dice", 5) << " | " << cell(variant.Name, "sensitivity", 5) << " | "
             << cell(variant.Name, "specificity", 5) << " | " << cell(variant.Name, "hd95_mm", 2) << " |\n";
    const double dice = MeanAndDeviation(pooled[variant.Name]["dice"]).first;
    if (dice > bestDice)
    {
      bestDice = dice;
      bestStudent = variant.Name;
    }
  }
  markdown << "\nHighest mean Dice: **" << bestStudent << "**.\n\n"
           << "## Teacher (brain-only image, normalised units)\n\n"
           << "| Model | MAE | PSNR (dB) | SSIM |\n|---|---|---|---|\n"
           << "| teacher | " << cell("teacher", "mae", 4) << " | " << cell("teacher", "psnr_db", 2) << " | "
           << cell("teacher", "ssim", 3) << " |\n";
  log << "Wrote " << markdownFile << " and report.json" << std::endl;
  return markdownFile;
}
} // end namespace itk
