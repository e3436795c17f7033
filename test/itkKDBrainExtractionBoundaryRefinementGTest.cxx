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
// The fine stage: its grid, band and features (KDBrainExtractionBoundaryRefinement),
// the refiner model, the student filter running it, and its trainer.
#include "itkGTest.h"
#include "itkImageFileWriter.h"
#include "itkKDBrainExtractionBoundaryRefinement.h"
#include "itkKDBrainExtractionTestUtilities.h"
#include "itkKDBrainExtractionTorchModelImplementation.h"
#include "itkKDBrainExtractionTrainer.h"
#include "itkKDStudentMaskFilter.h"
#include "itksys/SystemTools.hxx"

#include <cmath>
#include <random>

namespace
{
using itk::KDBrainExtractionBoundaryRefinement;
using itk::KDBrainExtractionTorchModel;
using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
using namespace itk::KDBrainExtractionTesting;
using MaskImageType = itk::Image<unsigned char, 3>;
using StudentFilterType = itk::KDStudentMaskFilter<ImageType, MaskImageType>;
using Refinement = KDBrainExtractionBoundaryRefinement;

ImageType::DirectionType
FlippedDirection()
{
  // RAS-stored data read into LPS: the first two axes run backwards.
  ImageType::DirectionType direction;
  direction.SetIdentity();
  direction(0, 0) = -1.0;
  direction(1, 1) = -1.0;
  return direction;
}

/** A synthetic head on an axis-aligned grid of \a spacing mm (flipped axes). */
ImageType::Pointer
MakeHead(double spacing)
{
  const auto           voxels = static_cast<itk::SizeValueType>(std::lround(100.0 / spacing));
  ImageType::PointType origin;
  origin[0] = 50.3;
  origin[1] = 49.6;
  origin[2] = -50.2;
  ImageType::PointType centre;
  centre.Fill(0.0);
  return MakeImage({ { voxels, voxels, voxels } },
                   ImageType::SpacingType(spacing),
                   origin,
                   FlippedDirection(),
                   [&](const ImageType::PointType & p) { return SyntheticHead(p, centre); });
}

/** A coarse probability on \a image's 2 mm working grid: 1 within \a radius mm of the origin. */
ImageType::Pointer
MakeCoarseBall(const ImageType * image, double radius)
{
  itk::KDBrainExtractionPreprocessing::Contract contract;
  const auto grid = itk::KDBrainExtractionPreprocessing::MakeWorkingGrid(image, contract);
  return MakeImage(grid->GetLargestPossibleRegion().GetSize(),
                   grid->GetSpacing(),
                   grid->GetOrigin(),
                   grid->GetDirection(),
                   [radius](const ImageType::PointType & p) {
                     return std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]) < radius ? 1.0f : 0.0f;
                   });
}

/** A tiny student whose output is ~1 over the whole head box, so that its
 * coarse mask has a boundary whatever its random weights. */
KDBrainExtractionTorchModel::Pointer
MakeConfidentStudent()
{
  auto               student = MakeTinyModel(RoleEnum::Student);
  torch::NoGradGuard noGrad;
  for (auto & parameter : student->GetImplementation().Network->named_parameters())
  {
    if (parameter.key().find("bias") != std::string::npos)
    {
      parameter.value().fill_(parameter.key().rfind("heads", 0) == 0 ? 20.0 : 0.0);
    }
  }
  return student;
}

/** A refiner with random weights, or one that calls every band point outside. */
KDBrainExtractionTorchModel::Pointer
MakeRefiner(bool everythingOutside)
{
  auto                                      refiner = KDBrainExtractionTorchModel::New();
  KDBrainExtractionTorchModel::Architecture architecture;
  architecture.Depth = 2;
  architecture.BaseWidth = 8;
  KDBrainExtractionTorchModel::Contract contract;
  contract.WorkingSpacing = { { 1.0, 1.0, 1.0 } };
  refiner->Initialize(RoleEnum::Refiner, architecture, contract, 3);
  refiner->SetDevice("cpu");
  if (everythingOutside)
  {
    torch::NoGradGuard noGrad;
    for (auto & parameter : refiner->GetImplementation().Refiner->named_parameters())
    {
      parameter.value().zero_();
      if (parameter.key() == "layers.4.bias")
      {
        parameter.value().fill_(-20.0);
      }
    }
  }
  return refiner;
}

std::string
TemporaryFile(const std::string & name)
{
  const std::string folder = std::string(KDBET_TEST_OUTPUT_DIR) + "/BoundaryRefinement";
  itksys::SystemTools::MakeDirectory(folder);
  return folder + "/" + name;
}
} // namespace

TEST(KDBrainExtractionBoundaryRefinement, RunsForInputsFinerThanTheWorkingGrid)
{
  itk::KDBrainExtractionPreprocessing::Contract contract; // 2 mm
  EXPECT_TRUE(Refinement::IsFinerThanWorkingGrid(MakeHead(1.0), contract));
  EXPECT_FALSE(Refinement::IsFinerThanWorkingGrid(MakeHead(2.0), contract));
  auto image = MakeHead(2.0);
  image->SetSpacing(ImageType::SpacingType(1.6));
  EXPECT_FALSE(Refinement::IsFinerThanWorkingGrid(image, contract));
  // Thick slices, fine in plane (as clinical scans): finer.
  ImageType::SpacingType clinical;
  clinical[0] = 0.5;
  clinical[1] = 0.5;
  clinical[2] = 4.0;
  image->SetSpacing(clinical);
  EXPECT_TRUE(Refinement::IsFinerThanWorkingGrid(image, contract));
  // The physical axes count, whatever the index axes' order.
  ImageType::DirectionType permuted;
  permuted.Fill(0.0);
  permuted(0, 2) = 1.0;
  permuted(1, 0) = 1.0;
  permuted(2, 1) = 1.0;
  image->SetSpacing(ImageType::SpacingType(2.0));
  image->SetDirection(permuted);
  EXPECT_FALSE(Refinement::IsFinerThanWorkingGrid(image, contract));
}

TEST(KDBrainExtractionBoundaryRefinement, FineGridSamplesTheInputAtItsOwnVoxels)
{
  const auto                                                 head = MakeHead(1.0);
  const auto                                                 coarse = MakeCoarseBall(head, 25.0);
  const itk::KDBrainExtractionPreprocessing::IntensityWindow window{ 0.0, 200.0 };
  const auto volumes = Refinement::PrepareFineVolumes(head, window, coarse, 1.0);
  const auto grid = volumes.Intensity;
  EXPECT_EQ(grid->GetSpacing(), ImageType::SpacingType(1.0));
  ImageType::DirectionType identity;
  identity.SetIdentity();
  EXPECT_EQ(grid->GetDirection(), identity);
  // Every fine voxel lies on an input voxel, and holds its normalised value.
  const auto size = grid->GetLargestPossibleRegion().GetSize();
  for (const itk::IndexValueType step : { 0, 7, 23 })
  {
    ImageType::IndexType fine{ { step, step + 3, step + 1 } };
    ImageType::PointType point;
    grid->TransformIndexToPhysicalPoint(fine, point);
    itk::ContinuousIndex<double, 3> inputIndex;
    head->TransformPhysicalPointToContinuousIndex(point, inputIndex);
    ImageType::IndexType nearest;
    for (unsigned int d = 0; d < 3; ++d)
    {
      nearest[d] = std::lround(inputIndex[d]);
      EXPECT_NEAR(inputIndex[d], nearest[d], 1e-6);
    }
    if (head->GetLargestPossibleRegion().IsInside(nearest))
    {
      EXPECT_FLOAT_EQ(grid->GetPixel(fine), std::clamp(head->GetPixel(nearest) / 200.0f, 0.0f, 1.0f));
    }
  }
  // The band: exactly the voxels from BandDepthInside inside to BandDepthOutside
  // outside the coarse surface, all far enough from the grid's edges for the features.
  ASSERT_FALSE(volumes.BandOffsets.empty());
  const float *     distance = volumes.CoarseDistance->GetBufferPointer();
  std::size_t       expected = 0;
  const std::size_t count = grid->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t offset = 0; offset < count; ++offset)
  {
    expected += distance[offset] >= -Refinement::BandDepthInside && distance[offset] <= Refinement::BandDepthOutside;
  }
  EXPECT_EQ(volumes.BandOffsets.size(), expected);
  for (const auto offset : volumes.BandOffsets)
  {
    const auto index = grid->ComputeIndex(offset);
    for (unsigned int d = 0; d < 3; ++d)
    {
      ASSERT_GE(index[d], 6);
      ASSERT_LT(index[d], static_cast<itk::IndexValueType>(size[d]) - 6);
    }
  }
  // Along rays from the centre: negative inside the ball (25 mm, on a 2 mm
  // grid), positive outside, growing by about a millimetre per millimetre.
  const auto centreOffset =
    static_cast<std::ptrdiff_t>(grid->ComputeOffset(grid->TransformPhysicalPointToIndex(ImageType::PointType(0.0))));
  for (const std::ptrdiff_t stride : { std::ptrdiff_t{ 1 }, -static_cast<std::ptrdiff_t>(size[0]) })
  {
    EXPECT_LT(distance[centreOffset + 20 * stride], 0.0f);
    EXPECT_GT(distance[centreOffset + 28 * stride], 0.0f);
    for (int millimetres = 14; millimetres < 34; ++millimetres)
    {
      EXPECT_GE(distance[centreOffset + (millimetres + 1) * stride], distance[centreOffset + millimetres * stride]);
    }
    const float slope = (distance[centreOffset + 34 * stride] - distance[centreOffset + 14 * stride]) / 20.0f;
    EXPECT_GT(slope, 0.7f);
    EXPECT_LT(slope, 1.2f);
  }
  EXPECT_NEAR(volumes.CoarseProbability->GetBufferPointer()[centreOffset], 1.0f, 1e-6);
}

TEST(KDBrainExtractionBoundaryRefinement, FeaturesFollowTheirLayout)
{
  const auto         head = MakeHead(1.0);
  const auto         volumes = Refinement::PrepareFineVolumes(head, { 0.0, 200.0 }, MakeCoarseBall(head, 25.0), 1.0);
  const auto         size = volumes.Intensity->GetLargestPossibleRegion().GetSize();
  const auto         nx = static_cast<std::ptrdiff_t>(size[0]);
  const auto         nxy = static_cast<std::ptrdiff_t>(size[0] * size[1]);
  const std::size_t  point = volumes.BandOffsets[volumes.BandOffsets.size() / 2];
  std::vector<float> features(Refinement::NumberOfFeatures);
  Refinement::GatherFeatures(volumes, &point, 1, features.data());
  const float * intensity = volumes.Intensity->GetBufferPointer();
  const auto    centre = static_cast<std::ptrdiff_t>(point);
  // 5x5x5 at 1 voxel, x fastest; then 3x3x3 at 3 and at 6 voxels; the coarse probability 3x3x3 at 2.
  EXPECT_EQ(features[0], intensity[centre - 2 - 2 * nx - 2 * nxy]);
  EXPECT_EQ(features[62], intensity[centre]);
  EXPECT_EQ(features[124], intensity[centre + 2 + 2 * nx + 2 * nxy]);
  EXPECT_EQ(features[125], intensity[centre - 3 - 3 * nx - 3 * nxy]);
  EXPECT_EQ(features[125 + 14], intensity[centre + 3]);
  EXPECT_EQ(features[152], intensity[centre - 6 - 6 * nx - 6 * nxy]);
  EXPECT_EQ(features[152 + 16], intensity[centre + 6 * nx]);
  EXPECT_EQ(features[179 + 22], volumes.CoarseProbability->GetBufferPointer()[centre + 2 * nxy]);
  EXPECT_FLOAT_EQ(features[206],
                  volumes.CoarseDistance->GetBufferPointer()[centre] / static_cast<float>(Refinement::BandDepthInside));
}

TEST(KDBrainExtractionBoundaryRefinement, NoCoarseBrainIsAClearError)
{
  const auto head = MakeHead(1.0);
  EXPECT_THROW(Refinement::PrepareFineVolumes(head, { 0.0, 200.0 }, MakeCoarseBall(head, 0.0), 1.0),
               itk::ExceptionObject);
}

TEST(KDBrainExtractionBoundaryRefinement, RefinerModelSavesLoadsAndKeepsToItsRole)
{
  const auto         refiner = MakeRefiner(false);
  std::mt19937       generator(5);
  std::vector<float> features(100 * Refinement::NumberOfFeatures);
  for (auto & value : features)
  {
    value = std::uniform_real_distribution<float>(0.0f, 1.0f)(generator);
  }
  std::vector<float> before(100);
  refiner->PredictBoundary(features.data(), 100, before.data());
  // Inference (oneDNN on the CPU) computes what training's forward pass does.
  {
    torch::NoGradGuard  noGrad;
    const torch::Tensor input = torch::from_blob(features.data(), { 100, Refinement::NumberOfFeatures });
    const torch::Tensor trained = torch::sigmoid(refiner->GetImplementation().Refiner->forward(input));
    for (int point = 0; point < 100; ++point)
    {
      EXPECT_NEAR(before[point], trained[point].item<float>(), 1e-5);
    }
  }
  const std::string file = TemporaryFile("refiner.kdbm");
  refiner->Save(file);
  auto loaded = KDBrainExtractionTorchModel::New();
  loaded->Load(file);
  EXPECT_EQ(loaded->GetRole(), RoleEnum::Refiner);
  EXPECT_EQ(loaded->GetNumberOfParameters(), refiner->GetNumberOfParameters());
  std::vector<float> after(100);
  loaded->PredictBoundary(features.data(), 100, after.data());
  EXPECT_EQ(before, after);
  // A refiner predicts points, not volumes; a student not points; and only a refiner refines.
  std::vector<float> volume(8 * 8 * 8, 0.5f);
  EXPECT_THROW(loaded->Predict(volume.data(), { 8, 8, 8 }, volume.data()), itk::ExceptionObject);
  const auto student = MakeTinyModel(RoleEnum::Student);
  EXPECT_THROW(student->PredictBoundary(features.data(), 100, after.data()), itk::ExceptionObject);
  itk::KDBrainExtractionPreprocessing::IntensityWindow window;
  const auto                                           head = MakeHead(2.0);
  EXPECT_THROW(itk::KDBrainExtractionBoundaryRefinement::Refine(head, window, head, *student, *student),
               itk::ExceptionObject);
  EXPECT_THROW(itk::KDBrainExtractionBoundaryRefinement::Refine(head, window, head, *loaded, *loaded),
               itk::ExceptionObject);
}

TEST(KDBrainExtractionBoundaryRefinement, StudentFilterRefinesOnlyFinerInputsAndOnlyTheBand)
{
  const auto student = MakeConfidentStudent(); // 4 mm working grid
  const auto refiner = MakeRefiner(true);
  const auto run = [&](const ImageType * image, bool refine) {
    auto filter = StudentFilterType::New();
    filter->SetInput(image);
    filter->SetModel(student);
    filter->SetRefinerModel(refiner);
    filter->SetBoundaryRefinement(refine);
    filter->Update();
    return filter;
  };
  const auto fine = MakeHead(2.0);
  EXPECT_FALSE(StudentFilterType::New()->GetBoundaryRefinement()); // experimental: off by default
  const auto refined = run(fine, true);
  const auto coarse = run(fine, false);
  EXPECT_TRUE(refined->GetBoundaryRefined());
  EXPECT_FALSE(coarse->GetBoundaryRefined());
  // The filter's mini-pipeline times its stages; the fine stage only when it ran.
  for (const auto & filter : { refined, coarse })
  {
    const auto & times = filter->GetStageTimes();
    EXPECT_GT(times.Preprocessing, 0.0);
    EXPECT_GT(times.Network, 0.0);
    EXPECT_GT(times.MapBack, 0.0);
  }
  EXPECT_GT(refined->GetStageTimes().Refinement, 0.0);
  EXPECT_EQ(coarse->GetStageTimes().Refinement, 0.0);
  // The refiner calls the band outside: the mask loses voxels near its
  // boundary, and gains none.
  std::size_t       lost = 0;
  std::size_t       kept = 0;
  const std::size_t count = fine->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < count; ++i)
  {
    const auto before = coarse->GetMaskOutput()->GetBufferPointer()[i];
    const auto after = refined->GetMaskOutput()->GetBufferPointer()[i];
    ASSERT_LE(after, before);
    lost += before > after;
    kept += after;
  }
  EXPECT_GT(lost, 0u);
  EXPECT_GT(kept, 0u); // deep inside, beyond the band, the coarse decision stands
  // An input on the working grid's own spacing is not refined.
  EXPECT_FALSE(run(MakeHead(4.0), true)->GetBoundaryRefined());
  // A refiner of the wrong role is refused, naming the role.
  auto filter = StudentFilterType::New();
  filter->SetInput(fine);
  filter->SetModel(student);
  filter->SetRefinerModel(student);
  filter->BoundaryRefinementOn();
  try
  {
    filter->Update();
    FAIL() << "a student was accepted as refiner";
  }
  catch (const itk::ExceptionObject & error)
  {
    EXPECT_NE(std::string(error.GetDescription()).find("needs a refiner model"), std::string::npos)
      << error.GetDescription();
  }
}

TEST(KDBrainExtractionBoundaryRefinement, TrainerLearnsFromPaintedLabelMaps)
{
  // A ball head in FreeSurfer codes at 1 mm: white matter, cortex, CSF, skull, scalp.
  using LabelImageType = itk::Image<unsigned short, 3>;
  auto labels = LabelImageType::New();
  labels->SetRegions(LabelImageType::SizeType{ { 72, 72, 72 } });
  labels->Allocate();
  for (itk::SizeValueType offset = 0; offset < labels->GetBufferedRegion().GetNumberOfPixels(); ++offset)
  {
    const auto   index = labels->ComputeIndex(offset);
    const double r =
      std::sqrt(std::pow(index[0] - 36.0, 2) + std::pow(index[1] - 36.0, 2) + std::pow(index[2] - 36.0, 2));
    labels->GetBufferPointer()[offset] = r < 12 ? 2 : r < 20 ? 3 : r < 23 ? 24 : r < 28 ? 515 : r < 33 ? 507 : 0;
  }
  const std::string labelFile = TemporaryFile("ball_labels.nii.gz");
  itk::WriteImage(labels, labelFile);
  const std::string studentFile = TemporaryFile("confident_student.kdbm");
  MakeConfidentStudent()->Save(studentFile);

  itk::KDBrainExtractionTrainer::Case labelMap;
  labelMap.Subject = "ball";
  labelMap.Labels = labelFile;
  itk::KDBrainExtractionTrainer::RefinerOptions options;
  options.CoarseModelFile = studentFile;
  options.NetworkArchitecture.BaseWidth = 8;
  options.HeadsPerLabelMap = 2;
  options.PointsPerHead = 300;
  options.NumberOfSteps = 40;
  options.BatchSize = 64;
  options.SyntheticContrasts = { "t1w" };
  options.Device = "cpu";
  options.ValidationCases = { labelMap };
  std::ostringstream log;
  const auto         model = itk::KDBrainExtractionTrainer::TrainBoundaryRefiner({ labelMap }, options, log);
  ASSERT_TRUE(model.IsNotNull());
  EXPECT_EQ(model->GetRole(), RoleEnum::Refiner);
  EXPECT_EQ(model->GetContract().WorkingSpacing[0], 1.0);
  EXPECT_EQ(model->GetMetadata("training.points"), "600");
  EXPECT_EQ(model->GetMetadata("training.coarse_model").size(), 16u);
  EXPECT_NE(log.str().find("validation band error rate: coarse"), std::string::npos) << log.str();
  // The student's coarse mask is the whole head box: the band is mostly
  // outside the brain, and 40 steps already beat calling it all brain.
  const auto   rates = log.str().substr(log.str().rfind("coarse "));
  const double coarseRate = std::stod(rates.substr(7));
  const double refinedRate = std::stod(rates.substr(rates.find("refined ") + 8));
  EXPECT_LT(refinedRate, coarseRate) << log.str();

  // Only label maps, and a student to refine.
  itk::KDBrainExtractionTrainer::Case realCase = labelMap;
  realCase.Image = labelFile;
  realCase.Mask = labelFile;
  EXPECT_THROW(itk::KDBrainExtractionTrainer::TrainBoundaryRefiner({ realCase }, options, log), itk::ExceptionObject);
  options.CoarseModelFile.clear();
  EXPECT_THROW(itk::KDBrainExtractionTrainer::TrainBoundaryRefiner({ labelMap }, options, log), itk::ExceptionObject);
}
