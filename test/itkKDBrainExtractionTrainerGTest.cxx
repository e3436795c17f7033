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
#include "itkImageFileWriter.h"
#include "itkImageRegionIteratorWithIndex.h"
#include "itkKDBrainExtractionTestUtilities.h"
#include "itkKDBrainExtractionEvaluationProtocol.h"
#include "itkKDBrainExtractionTrainer.h"
#include "itksys/SystemTools.hxx"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <tuple>

namespace
{
using itk::KDBrainExtractionTorchModel;
using itk::KDBrainExtractionTrainer;
using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
using namespace itk::KDBrainExtractionTesting;

/** Four small synthetic heads (and masks) at 4 mm, written as NIfTI, with a manifest, in a
 * folder of the running test's own: CTest runs the tests of this file in parallel, and one
 * test rewriting a shared folder while another reads it made the reader fail. */
std::string
MakeSyntheticDataset()
{
  const std::string directory = itksys::SystemTools::GetCurrentWorkingDirectory() + "/gtest-trainer-data-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name();
  itksys::SystemTools::MakeDirectory(directory + "/images");
  std::ofstream manifest(directory + "/cases.csv");
  manifest << "subject,image,mask,labels\n";
  for (unsigned int i = 0; i < 4; ++i)
  {
    ImageType::PointType centre;
    centre[0] = 4.0 * i - 6.0;
    centre[1] = -3.0 * i;
    centre[2] = 2.0 * i;
    const ImageType::SpacingType spacing(4.0);
    ImageType::DirectionType     identity;
    identity.SetIdentity();
    ImageType::PointType origin(-62.0);
    const auto image = MakeImage({ { 32, 32, 32 } }, spacing, origin, identity, [&](const ImageType::PointType & p) {
      return SyntheticHead(p, centre) * (1.0f + 0.2f * i);
    });
    auto       mask = itk::Image<unsigned char, 3>::New();
    mask->CopyInformation(image);
    mask->SetRegions(image->GetLargestPossibleRegion());
    mask->Allocate();
    for (std::size_t v = 0; v < image->GetLargestPossibleRegion().GetNumberOfPixels(); ++v)
    {
      mask->GetBufferPointer()[v] = image->GetBufferPointer()[v] >= 80.0f ? 1 : 0;
    }
    // Brain labels for contrast synthesis: a bright core and a darker rim.
    auto labels = itk::Image<unsigned short, 3>::New();
    labels->CopyInformation(image);
    labels->SetRegions(image->GetLargestPossibleRegion());
    labels->Allocate();
    for (std::size_t v = 0; v < image->GetLargestPossibleRegion().GetNumberOfPixels(); ++v)
    {
      const float value = image->GetBufferPointer()[v] / (1.0f + 0.2f * i);
      labels->GetBufferPointer()[v] = mask->GetBufferPointer()[v] ? (value >= 95.0f ? 81 : 150) : 0;
    }
    const std::string subject = "synthetic" + std::to_string(i);
    itk::WriteImage(image, directory + "/images/" + subject + "_head.nii.gz");
    itk::WriteImage(mask, directory + "/images/" + subject + "_mask.nii.gz");
    itk::WriteImage(labels, directory + "/images/" + subject + "_labels.nii.gz");
    manifest << subject << ",images/" << subject << "_head.nii.gz,images/" << subject << "_mask.nii.gz,images/"
             << subject << "_labels.nii.gz\n";
  }
  return directory + "/cases.csv";
}

KDBrainExtractionTrainer::Options
TinyOptions(RoleEnum role)
{
  KDBrainExtractionTrainer::Options options;
  options.Role = role;
  options.NetworkArchitecture.Depth = 2;
  options.NetworkArchitecture.BaseWidth = 4;
  options.PreprocessingContract.WorkingSpacing = { { 4.0, 4.0, 4.0 } };
  options.NumberOfSteps = 4;
  options.BatchSize = 2;
  options.PatchSize = 16;
  options.Device = "cpu";
  options.Seed = 3;
  return options;
}

std::vector<float>
PredictOn(const KDBrainExtractionTorchModel * model)
{
  std::vector<float> input(24 * 24 * 24);
  for (std::size_t i = 0; i < input.size(); ++i)
  {
    input[i] = static_cast<float>((i * 13) % 17) / 16.0f;
  }
  std::vector<float> output(input.size());
  model->Predict(input.data(), { { 24, 24, 24 } }, output.data());
  return output;
}
} // namespace

TEST(KDBrainExtractionTrainer, ReadsManifestsWithRelativePaths)
{
  const auto cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  ASSERT_EQ(cases.size(), 4u);
  EXPECT_EQ(cases[1].Subject, "synthetic1");
  EXPECT_TRUE(itksys::SystemTools::FileExists(cases[1].Image, true)) << cases[1].Image;
  EXPECT_TRUE(itksys::SystemTools::FileExists(cases[1].Mask, true)) << cases[1].Mask;

  // The shared IXI manifest reads as it is (t1 and brainmask columns).
  const char *      dataDirectory = std::getenv("KDBrainExtraction_DATA_DIR");
  const std::string ixi =
    std::string(dataDirectory ? dataDirectory : "") + "/../../shared/data/ixi-hh-t1-2mm/cases.csv";
  if (dataDirectory && itksys::SystemTools::FileExists(ixi, true))
  {
    const auto ixiCases = KDBrainExtractionTrainer::ReadManifest(ixi);
    EXPECT_EQ(ixiCases.size(), 185u);
    EXPECT_EQ(ixiCases.front().Subject, "IXI012-HH-1211");
    EXPECT_TRUE(itksys::SystemTools::FileExists(ixiCases.front().Mask, true));
  }
}

// The library reports each step to the application's observer and draws
// nothing; without an observer it logs plain lines (no carriage returns).
TEST(KDBrainExtractionTrainer, ReportsEveryStepToTheObserverAndDrawsNothing)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Teacher);
  std::vector<KDBrainExtractionTrainer::StepReport> reports;
  options.StepCallback = [&reports](const KDBrainExtractionTrainer::StepReport & report) { reports.push_back(report); };
  ASSERT_TRUE(KDBrainExtractionTrainer::Train(cases, options, log).IsNotNull());
  ASSERT_EQ(reports.size(), options.NumberOfSteps);
  for (std::size_t index = 0; index < reports.size(); ++index)
  {
    EXPECT_EQ(reports[index].Step, index + 1);
    EXPECT_EQ(reports[index].NumberOfSteps, options.NumberOfSteps);
    EXPECT_EQ(reports[index].Role, RoleEnum::Teacher);
    EXPECT_TRUE(std::isfinite(reports[index].Loss));
    EXPECT_GT(reports[index].StepsPerSecond, 0.0);
  }
  EXPECT_EQ(reports.back().SecondsLeft, 0.0);
  EXPECT_EQ(log.str().find("step 1/"), std::string::npos) << "the observer draws, not the library";

  options.StepCallback = nullptr;
  std::ostringstream plain;
  ASSERT_TRUE(KDBrainExtractionTrainer::Train(cases, options, plain).IsNotNull());
  EXPECT_EQ(plain.str().find('\r'), std::string::npos);
  EXPECT_NE(plain.str().find("step " + std::to_string(options.NumberOfSteps) + "/"), std::string::npos) << plain.str();
}

TEST(KDBrainExtractionTrainer, TeacherThenDistilledStudentResumeExactly)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  const std::string  directory = itksys::SystemTools::GetFilenamePath(cases.front().Image) + "/..";
  std::ostringstream log;

  auto teacherOptions = TinyOptions(RoleEnum::Teacher);
  teacherOptions.LogFile = directory + "/teacher.jsonl";
  itksys::SystemTools::RemoveFile(teacherOptions.LogFile);
  const auto teacher = KDBrainExtractionTrainer::Train(cases, teacherOptions, log);
  ASSERT_TRUE(teacher.IsNotNull());
  EXPECT_EQ(teacher->GetRole(), RoleEnum::Teacher);
  const std::string teacherFile = directory + "/teacher.kdbm";
  teacher->Save(teacherFile);
  std::ifstream jsonLog(teacherOptions.LogFile);
  std::string   firstLine;
  std::getline(jsonLog, firstLine);
  EXPECT_NE(firstLine.find("\"epoch\":"), std::string::npos) << firstLine;

  // Uninterrupted run.
  auto studentOptions = TinyOptions(RoleEnum::Student);
  studentOptions.TeacherModelFile = teacherFile;
  studentOptions.DistillationWeight = 0.3;
  const auto uninterrupted = KDBrainExtractionTrainer::Train(cases, studentOptions, log);
  ASSERT_TRUE(uninterrupted.IsNotNull());
  EXPECT_NE(uninterrupted->GetMetadata("training.distillation").find("image, weight 0.3"), std::string::npos);

  // The same run stopped after 2 steps, then resumed from its checkpoint.
  studentOptions.CheckpointFile = directory + "/student.ckpt";
  studentOptions.CheckpointInterval = 2;
  itksys::SystemTools::RemoveFile(studentOptions.CheckpointFile);
  studentOptions.NumberOfSteps = 2;
  ASSERT_TRUE(KDBrainExtractionTrainer::Train(cases, studentOptions, log).IsNotNull());
  studentOptions.NumberOfSteps = 4;
  const auto resumed = KDBrainExtractionTrainer::Train(cases, studentOptions, log);
  ASSERT_TRUE(resumed.IsNotNull());
  EXPECT_NE(log.str().find("Resuming from"), std::string::npos);
  EXPECT_EQ(PredictOn(uninterrupted), PredictOn(resumed)) << "resumption is not bit-for-bit";

  // A different seed trains a different network.
  studentOptions.CheckpointFile.clear();
  studentOptions.Seed = 4;
  const auto otherSeed = KDBrainExtractionTrainer::Train(cases, studentOptions, log);
  EXPECT_NE(PredictOn(uninterrupted), PredictOn(otherSeed));
}

TEST(KDBrainExtractionTrainer, SyntheticContrastsAreReproducibleAndFineTuningStartsFromAModel)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  const std::string  directory = itksys::SystemTools::GetFilenamePath(cases.front().Image) + "/..";
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Student);
  options.NumberOfSteps = 3;
  options.DistillationWeight = 0.0;
  const auto realOnly = KDBrainExtractionTrainer::Train(cases, options, log);

  options.SyntheticFraction = 1.0;
  options.SyntheticContrasts = { "t2w", "random" };
  const auto synthetic = KDBrainExtractionTrainer::Train(cases, options, log);
  const auto again = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(synthetic.IsNotNull() && again.IsNotNull());
  EXPECT_EQ(PredictOn(synthetic), PredictOn(again)) << "synthesis is not reproducible";
  // Loader threads prepare the same batches, in parallel and a step ahead.
  options.BatchSize = 3;
  options.NumberOfLoaderThreads = 0;
  const auto inTurn = KDBrainExtractionTrainer::Train(cases, options, log);
  options.NumberOfLoaderThreads = 3;
  const auto parallel = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(inTurn.IsNotNull() && parallel.IsNotNull());
  EXPECT_EQ(PredictOn(inTurn), PredictOn(parallel)) << "loader threads changed the batches";
  options.BatchSize = 2;
  options.NumberOfLoaderThreads = -1;
  EXPECT_NE(PredictOn(synthetic), PredictOn(realOnly)) << "the synthetic images were not used";
  EXPECT_EQ(synthetic->GetMetadata("training.synthetic"), "fraction 1, contrasts t2w random");

  // Fine-tuning records the model it started from, and refuses another architecture.
  const std::string initialFile = directory + "/synthetic-student.kdbm";
  synthetic->Save(initialFile);
  options.InitialModelFile = initialFile;
  options.NumberOfSteps = 1;
  const auto tuned = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(tuned.IsNotNull());
  EXPECT_EQ(tuned->GetMetadata("training.initial_model"), synthetic->GetChecksum());
  options.NetworkArchitecture.BaseWidth = 6;
  EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject);

  // Synthesis needs label maps and known contrast names.
  options = TinyOptions(RoleEnum::Student);
  options.SyntheticFraction = 0.5;
  auto withoutLabels = cases;
  for (auto & item : withoutLabels)
  {
    item.Labels.clear();
  }
  EXPECT_THROW(KDBrainExtractionTrainer::Train(withoutLabels, options, log), itk::ExceptionObject);
  options.SyntheticContrasts = { "flair" };
  EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject);
}

TEST(KDBrainExtractionTrainer, IsotropicCoarseningIsPartOfTheAugmentation)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Student);
  options.DistillationWeight = 0.0;
  const auto standard = KDBrainExtractionTrainer::Train(cases, options, log);
  options.MaximumIsotropicCoarsening = 4.0;
  const auto coarse = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(standard.IsNotNull() && coarse.IsNotNull());
  EXPECT_NE(PredictOn(standard), PredictOn(coarse)) << "no sample was coarsened more";
  EXPECT_EQ(standard->GetMetadata("training.max_isotropic_coarsening"), "");
  EXPECT_EQ(coarse->GetMetadata("training.max_isotropic_coarsening"), "4");

  // Without augmentation nothing is coarsened, whatever the factor.
  options.Augment = false;
  const auto plainCoarse = KDBrainExtractionTrainer::Train(cases, options, log);
  options.MaximumIsotropicCoarsening = 1.6;
  const auto plain = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(plain.IsNotNull() && plainCoarse.IsNotNull());
  EXPECT_EQ(PredictOn(plain), PredictOn(plainCoarse));

  for (const double factor : { 0.5, 4.5, std::nan("") })
  {
    options.MaximumIsotropicCoarsening = factor;
    EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject) << factor;
  }
}

TEST(KDBrainExtractionTrainer, IntensityRemappingChangesTheRealSamples)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Student);
  options.DistillationWeight = 0.0;
  options.Augment = false; // remapping is drawn apart from the augmentation
  const auto plain = KDBrainExtractionTrainer::Train(cases, options, log);
  options.IntensityRemappingFraction = 1.0;
  const auto remapped = KDBrainExtractionTrainer::Train(cases, options, log);
  const auto again = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(plain.IsNotNull() && remapped.IsNotNull() && again.IsNotNull());
  EXPECT_NE(PredictOn(plain), PredictOn(remapped)) << "no sample was remapped";
  EXPECT_EQ(PredictOn(remapped), PredictOn(again)) << "remapping is not a function of the seed";
  EXPECT_EQ(plain->GetMetadata("training.intensity_remapping"), "");
  EXPECT_EQ(remapped->GetMetadata("training.intensity_remapping"), "1");
  for (const double fraction : { -0.1, 1.5, std::nan("") })
  {
    options.IntensityRemappingFraction = fraction;
    EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject) << fraction;
  }
}

/** A whole-head label map at 4 mm (FreeSurfer codes): white matter in
 * cortex, CSF around it, skull and scalp; written beside the test's data. */
std::string
MakeWholeHeadLabelMap(const std::string & manifest)
{
  using LabelImageType = itk::Image<unsigned short, 3>;
  auto labels = LabelImageType::New();
  labels->SetRegions(LabelImageType::SizeType{ { 32, 32, 32 } });
  labels->SetSpacing(4.0);
  labels->SetOrigin(-62.0);
  labels->Allocate();
  for (itk::ImageRegionIteratorWithIndex<LabelImageType> it(labels, labels->GetBufferedRegion()); !it.IsAtEnd(); ++it)
  {
    LabelImageType::PointType point;
    labels->TransformIndexToPhysicalPoint(it.GetIndex(), point);
    const double r =
      std::sqrt(point[0] * point[0] / 900.0 + point[1] * point[1] / 1444.0 + point[2] * point[2] / 784.0);
    it.Set(r < 0.5 ? 2 : r < 0.8 ? 3 : r < 0.9 ? 24 : r < 1.0 ? 515 : r < 1.1 ? 507 : 0);
  }
  const std::string file = itksys::SystemTools::GetFilenamePath(manifest) + "/whole_head_labels.nii.gz";
  itk::WriteImage(labels, file);
  return file;
}

TEST(KDBrainExtractionTrainer, LabelMapCasesArePaintedEverySample)
{
  const std::string  manifest = MakeSyntheticDataset();
  auto               cases = KDBrainExtractionTrainer::ReadManifest(manifest);
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Student);
  options.DistillationWeight = 0.0;
  const auto                     withoutMaps = KDBrainExtractionTrainer::Train(cases, options, log);
  KDBrainExtractionTrainer::Case map;
  map.Subject = "whole_head";
  map.Labels = MakeWholeHeadLabelMap(manifest);
  // Listed three times (weighted up): loaded once, sampled like three cases.
  cases.insert(cases.end(), 3, map);
  const auto withMaps = KDBrainExtractionTrainer::Train(cases, options, log);
  const auto again = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(withoutMaps.IsNotNull() && withMaps.IsNotNull() && again.IsNotNull());
  EXPECT_NE(PredictOn(withoutMaps), PredictOn(withMaps));
  EXPECT_EQ(PredictOn(withMaps), PredictOn(again)) << "painting is not a function of the seed";
  EXPECT_EQ(withMaps->GetMetadata("training.label_map_cases"), "3");
  EXPECT_EQ(withoutMaps->GetMetadata("training.label_map_cases"), "");
  // A map with no image cannot be a validation case (nothing to score on).
  options.ValidationCases = { map };
  EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject);
}

TEST(KDBrainExtractionTrainer, AgeingCroppingDeformationAndSlabsChangeTheSamplesOnlyWhenOn)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Student);
  options.DistillationWeight = 0.0;
  options.SyntheticFraction = 1.0;
  const auto plain = PredictOn(KDBrainExtractionTrainer::Train(cases, options, log));
  using Setter = std::function<void(KDBrainExtractionTrainer::Options &, double)>;
  const std::vector<std::tuple<std::string, Setter, double, std::vector<double>>> variants{
    { "atrophy", [](auto & o, double v) { o.AtrophyFraction = v; }, 1.0, { -0.1, 1.5, std::nan("") } },
    { "field_of_view_crop", [](auto & o, double v) { o.FieldOfViewCropFraction = v; }, 1.0, { -1.0, 2.0 } },
    { "max_deformation_mm", [](auto & o, double v) { o.MaximumDeformation = v; }, 8.0, { -1.0, 25.0 } },
    { "max_slice_thickness", [](auto & o, double v) { o.MaximumSliceThicknessFactor = v; }, 4.5, { 1.0, 6.0 } },
  };
  for (const auto & [key, set, value, invalid] : variants)
  {
    auto changed = options;
    set(changed, value);
    const auto model = KDBrainExtractionTrainer::Train(cases, changed, log);
    ASSERT_TRUE(model.IsNotNull()) << key;
    EXPECT_NE(PredictOn(model), plain) << key << ": no sample changed";
    EXPECT_EQ(PredictOn(KDBrainExtractionTrainer::Train(cases, changed, log)), PredictOn(model))
      << key << " is not a function of the seed";
    EXPECT_NE(model->GetMetadata("training." + key), "") << key;
    for (const double bad : invalid)
    {
      set(changed, bad);
      EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, changed, log), itk::ExceptionObject) << key << " " << bad;
    }
  }
  options.SyntheticContrasts = { "flair" };
  EXPECT_NE(PredictOn(KDBrainExtractionTrainer::Train(cases, options, log)), plain) << "FLAIR painted as the others";
}

TEST(KDBrainExtractionTrainer, RefusesInconsistentOptions)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Student);
  options.DistillationWeight = 0.3; // but no teacher
  EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject);
  options.DistillationWeight = 1.5;
  EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject);
  options.DistillationWeight = 0.0;
  options.DistillationMode = "telepathy";
  EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject);
}

TEST(KDBrainExtractionEvaluationProtocol, TinyEndToEndRunWritesTheReportAndResumes)
{
  const auto cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  itk::KDBrainExtractionEvaluationProtocol::Options options;
  options.Teacher = TinyOptions(RoleEnum::Teacher);
  options.Student = TinyOptions(RoleEnum::Student);
  options.Teacher.NumberOfSteps = 2;
  options.Student.NumberOfSteps = 2;
  options.NumberOfSplits = 2;
  options.TrainingFraction = 0.75;
  options.OutputDirectory = itksys::SystemTools::GetCurrentWorkingDirectory() + "/gtest-protocol";
  itksys::SystemTools::RemoveADirectory(options.OutputDirectory);
  std::ostringstream log;
  const std::string  report = itk::KDBrainExtractionEvaluationProtocol::Run(cases, options, log);
  ASSERT_FALSE(report.empty());

  std::ifstream     markdownFile(report);
  const std::string markdown((std::istreambuf_iterator<char>(markdownFile)), std::istreambuf_iterator<char>());
  EXPECT_NE(markdown.find("| unetpp-baseline (a = 0) |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("| kd-image (a = 0.3, image) |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("| kd-soft-mask (a = 0.3, soft-mask) |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("| teacher |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("Highest mean Dice"), std::string::npos);

  std::ifstream     jsonFile(options.OutputDirectory + "/report.json");
  const std::string json((std::istreambuf_iterator<char>(jsonFile)), std::istreambuf_iterator<char>());
  // 2 splits x 1 held-out subject x (teacher + 3 students).
  std::size_t evaluations = 0;
  for (auto at = json.find("\"split\": "); at != std::string::npos; at = json.find("\"split\": ", at + 1))
  {
    ++evaluations;
  }
  EXPECT_EQ(evaluations, 8u);
  EXPECT_NE(json.find("\"dice\": {\"mean\": "), std::string::npos);
  EXPECT_NE(json.find("\"psnr_db\": {\"mean\": "), std::string::npos);

  // A second run reuses every trained model.
  std::ostringstream again;
  EXPECT_FALSE(itk::KDBrainExtractionEvaluationProtocol::Run(cases, options, again).empty());
  EXPECT_EQ(again.str().find("Training "), std::string::npos) << again.str();
  EXPECT_NE(again.str().find("Reusing "), std::string::npos);

  // Finished splits need only their stored evaluations, not their models: the
  // report comes out the same without them.
  for (const char * model : { "teacher", "unetpp-baseline", "kd-image", "kd-soft-mask" })
  {
    for (const char * split : { "/split-0/", "/split-1/" })
    {
      ASSERT_TRUE(itksys::SystemTools::RemoveFile(options.OutputDirectory + split + model + ".kdbm"));
    }
  }
  std::ostringstream withoutModels;
  EXPECT_FALSE(itk::KDBrainExtractionEvaluationProtocol::Run(cases, options, withoutModels).empty());
  EXPECT_EQ(withoutModels.str().find("Training "), std::string::npos) << withoutModels.str();
  std::ifstream     jsonAgainFile(options.OutputDirectory + "/report.json");
  const std::string jsonAgain((std::istreambuf_iterator<char>(jsonAgainFile)), std::istreambuf_iterator<char>());
  EXPECT_EQ(jsonAgain, json);
}

TEST(KDBrainExtractionTrainer, BatchNormRecalibrationReplacesOnlyTheRunningStatistics)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  const std::string  directory = itksys::SystemTools::GetFilenamePath(cases.front().Image) + "/..";
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Student);
  options.DistillationWeight = 0.0;
  const auto trained = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(trained.IsNotNull());
  const std::string trainedFile = directory + "/trained-student.kdbm";
  trained->Save(trainedFile);

  // No steps is only allowed with a model to start from.
  options.NumberOfSteps = 0;
  EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject);

  // Zero steps and no recalibration hand the initial model back unchanged.
  options.InitialModelFile = trainedFile;
  const auto copied = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(copied.IsNotNull());
  EXPECT_EQ(PredictOn(copied), PredictOn(trained));

  options.BatchNormRecalibrationBatches = 3;
  const auto recalibrated = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(recalibrated.IsNotNull());
  EXPECT_NE(PredictOn(recalibrated), PredictOn(trained)) << "the running statistics did not change";
  EXPECT_EQ(recalibrated->GetMetadata("training.batch_norm_recalibration"), "3 batches");

  // The statistics are reset and averaged anew over the same batches, and the
  // weights are untouched: recalibrating the recalibrated model changes nothing.
  const std::string recalibratedFile = directory + "/recalibrated-student.kdbm";
  recalibrated->Save(recalibratedFile);
  options.InitialModelFile = recalibratedFile;
  const auto twice = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(twice.IsNotNull());
  const auto once = PredictOn(recalibrated);
  const auto again = PredictOn(twice);
  ASSERT_EQ(once.size(), again.size());
  for (std::size_t i = 0; i < once.size(); ++i)
  {
    ASSERT_NEAR(once[i], again[i], 1e-5) << "at " << i;
  }
}

TEST(KDBrainExtractionTrainer, WeightAveragingUsesTheLastStepsAndResumesExactly)
{
  const auto         cases = KDBrainExtractionTrainer::ReadManifest(MakeSyntheticDataset());
  const std::string  directory = itksys::SystemTools::GetFilenamePath(cases.front().Image) + "/..";
  std::ostringstream log;
  auto               options = TinyOptions(RoleEnum::Student);
  options.DistillationWeight = 0.0;
  const auto lastStep = KDBrainExtractionTrainer::Train(cases, options, log);

  // The mean over the last step alone is the last step's weights.
  options.WeightAveragingSteps = 1;
  const auto overOne = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(lastStep.IsNotNull() && overOne.IsNotNull());
  EXPECT_EQ(PredictOn(overOne), PredictOn(lastStep));

  options.WeightAveragingSteps = 3;
  const auto overThree = KDBrainExtractionTrainer::Train(cases, options, log);
  ASSERT_TRUE(overThree.IsNotNull());
  EXPECT_NE(PredictOn(overThree), PredictOn(lastStep)) << "the weights were not averaged";
  EXPECT_EQ(overThree->GetMetadata("training.weight_averaging"), "last 3 steps");

  // Stopped after every step and resumed: the checkpoint carries the running mean.
  options.CheckpointFile = directory + "/averaging.ckpt";
  options.CheckpointInterval = 1;
  options.TimeLimitSeconds = 1e-9;
  itksys::SystemTools::RemoveFile(options.CheckpointFile);
  KDBrainExtractionTorchModel::Pointer resumed;
  for (unsigned int run = 0; run < options.NumberOfSteps && resumed.IsNull(); ++run)
  {
    resumed = KDBrainExtractionTrainer::Train(cases, options, log);
  }
  ASSERT_TRUE(resumed.IsNotNull());
  EXPECT_EQ(PredictOn(resumed), PredictOn(overThree)) << "resumption changed the weight average";

  options.CheckpointFile.clear();
  options.TimeLimitSeconds = 0.0;
  options.WeightAveragingSteps = options.NumberOfSteps + 1;
  EXPECT_THROW(KDBrainExtractionTrainer::Train(cases, options, log), itk::ExceptionObject);
}
