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

#include "itkCommand.h"
#include "itkGTest.h"
#include "itkImageRegionConstIteratorWithIndex.h"
#include "itkKDBrainExtractionTestUtilities.h"
#include "itkKDStudentMaskFilter.h"
#include "itkKDTeacherImageFilter.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace
{
using itk::KDBrainExtractionTorchModel;
using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
using namespace itk::KDBrainExtractionTesting;
using MaskImageType = itk::Image<unsigned char, 3>;
using StudentFilterType = itk::KDStudentMaskFilter<ImageType, MaskImageType>;

/** A synthetic head on an oblique, anisotropic grid. */
ImageType::Pointer
MakeObliqueHead()
{
  ImageType::SpacingType spacing;
  spacing[0] = 3.0;
  spacing[1] = 2.5;
  spacing[2] = 4.0;
  ImageType::PointType origin;
  origin[0] = -45.0;
  origin[1] = -40.0;
  origin[2] = -50.0;
  ImageType::PointType centre;
  centre.Fill(0.0);
  const auto         direction = MakeObliqueDirection(25.0, 10.0);
  ImageType::Pointer image =
    MakeImage({ { 30, 36, 24 } }, spacing, origin, direction, [&](const ImageType::PointType & p) {
      return SyntheticHead(p, centre);
    });
  // Move the grid so that the head is roughly centred in it.
  ImageType::IndexType middle{ { 15, 18, 12 } };
  ImageType::PointType middlePoint;
  image->TransformIndexToPhysicalPoint(middle, middlePoint);
  for (unsigned int d = 0; d < 3; ++d)
  {
    origin[d] -= middlePoint[d];
  }
  return MakeImage({ { 30, 36, 24 } }, spacing, origin, direction, [&](const ImageType::PointType & p) {
    return SyntheticHead(p, centre);
  });
}
} // namespace

TEST(KDBrainExtractionFilters, StudentOutputsLieOnTheInputGrid)
{
  const auto head = MakeObliqueHead();
  auto       filter = StudentFilterType::New();
  filter->SetModel(MakeTinyModel(RoleEnum::Student));
  filter->SetInput(head);
  filter->SetThreshold(0.5);
  ASSERT_NO_THROW(filter->Update());
  for (const itk::ImageBase<3> * output : { static_cast<const itk::ImageBase<3> *>(filter->GetMaskOutput()),
                                            static_cast<const itk::ImageBase<3> *>(filter->GetProbabilityOutput()),
                                            static_cast<const itk::ImageBase<3> *>(filter->GetMaskedOutput()) })
  {
    EXPECT_EQ(output->GetLargestPossibleRegion(), head->GetLargestPossibleRegion());
    EXPECT_EQ(output->GetOrigin(), head->GetOrigin());
    EXPECT_EQ(output->GetSpacing(), head->GetSpacing());
    EXPECT_EQ(output->GetDirection(), head->GetDirection());
  }
  // The probability is a probability, and the mask its thresholded largest component.
  const std::size_t n = head->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i)
  {
    const float p = filter->GetProbabilityOutput()->GetBufferPointer()[i];
    ASSERT_GE(p, 0.0f);
    ASSERT_LE(p, 1.0f);
    ASSERT_LE(filter->GetMaskOutput()->GetBufferPointer()[i], 1);
  }
}

TEST(KDBrainExtractionFilters, ReorientedInputGivesTheSameResultInPhysicalSpace)
{
  const auto                                                        head = MakeObliqueHead();
  std::function<ImageType::IndexType(const ImageType::IndexType &)> sourceIndex;
  const auto reoriented = MakeReorientedCopy(head, { { 1, 2, 0 } }, { { true, false, true } }, sourceIndex);
  const auto model = MakeTinyModel(RoleEnum::Student);

  auto original = StudentFilterType::New();
  original->SetModel(model);
  original->SetInput(head);
  original->Update();
  auto permuted = StudentFilterType::New();
  permuted->SetModel(model);
  permuted->SetInput(reoriented);
  permuted->Update();

  itk::ImageRegionConstIteratorWithIndex<ImageType> it(permuted->GetProbabilityOutput(),
                                                       reoriented->GetLargestPossibleRegion());
  unsigned int                                      maskDifferences = 0;
  for (; !it.IsAtEnd(); ++it)
  {
    const auto source = sourceIndex(it.GetIndex());
    ASSERT_NEAR(it.Get(), original->GetProbabilityOutput()->GetPixel(source), 1e-4) << "at " << it.GetIndex();
    maskDifferences +=
      permuted->GetMaskOutput()->GetPixel(it.GetIndex()) != original->GetMaskOutput()->GetPixel(source);
  }
  EXPECT_EQ(maskDifferences, 0u);
}

TEST(KDBrainExtractionFilters, AbortStopsGenerateData)
{
  auto filter = StudentFilterType::New();
  filter->SetModel(MakeTinyModel(RoleEnum::Student));
  filter->SetInput(MakeObliqueHead());
  auto abort = itk::CStyleCommand::New();
  abort->SetCallback([](itk::Object * caller, const itk::EventObject &, void *) {
    auto * process = static_cast<itk::ProcessObject *>(caller);
    if (process->GetProgress() > 0.2f)
    {
      process->AbortGenerateDataOn();
    }
  });
  unsigned int progressEvents = 0;
  auto         count = itk::CStyleCommand::New();
  count->SetClientData(&progressEvents);
  count->SetCallback(
    [](itk::Object *, const itk::EventObject &, void * data) { ++*static_cast<unsigned int *>(data); });
  filter->AddObserver(itk::ProgressEvent(), count);
  filter->AddObserver(itk::ProgressEvent(), abort);
  EXPECT_THROW(filter->Update(), itk::ProcessAborted);
  EXPECT_GT(progressEvents, 2u);
}

TEST(KDBrainExtractionFilters, ModelOfTheWrongRoleIsRefused)
{
  auto student = StudentFilterType::New();
  student->SetModel(MakeTinyModel(RoleEnum::Teacher));
  student->SetInput(MakeObliqueHead());
  try
  {
    student->Update();
    ADD_FAILURE() << "a teacher model was accepted by the student filter";
  }
  catch (const itk::ExceptionObject & error)
  {
    EXPECT_NE(std::string(error.GetDescription()).find("needs a student model"), std::string::npos)
      << error.GetDescription();
  }
  auto teacher = itk::KDTeacherImageFilter<ImageType>::New();
  teacher->SetModel(MakeTinyModel(RoleEnum::Student));
  teacher->SetInput(MakeObliqueHead());
  EXPECT_THROW(teacher->Update(), itk::ExceptionObject);
}

TEST(KDBrainExtractionFilters, TeacherWritesInputUnitsOnTheInputGrid)
{
  const auto head = MakeObliqueHead();
  auto       filter = itk::KDTeacherImageFilter<ImageType, itk::Image<short, 3>>::New();
  filter->SetModel(MakeTinyModel(RoleEnum::Teacher));
  filter->SetInput(head);
  ASSERT_NO_THROW(filter->Update());
  const auto * output = filter->GetOutput();
  EXPECT_EQ(output->GetLargestPossibleRegion(), head->GetLargestPossibleRegion());
  EXPECT_EQ(output->GetDirection(), head->GetDirection());
  // A sigmoid output in [0, 1] maps into the input's window [0, ~110].
  for (std::size_t i = 0; i < head->GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
  {
    ASSERT_GE(output->GetBufferPointer()[i], 0);
    ASSERT_LE(output->GetBufferPointer()[i], 111);
  }
}

TEST(KDBrainExtractionFilters, BadInputIsAClearError)
{
  auto filter = StudentFilterType::New();
  filter->SetModel(MakeTinyModel(RoleEnum::Student));
  auto constant = MakeObliqueHead();
  constant->FillBuffer(5.0f);
  filter->SetInput(constant);
  try
  {
    filter->Update();
    ADD_FAILURE() << "a constant image was accepted";
  }
  catch (const itk::ExceptionObject & error)
  {
    EXPECT_NE(std::string(error.GetDescription()).find("constant"), std::string::npos) << error.GetDescription();
  }
}

TEST(KDBrainExtractionFilters, NewWeightsInTheModelMakeTheOutputOutOfDate)
{
  const auto model = MakeTinyModel(RoleEnum::Student);
  auto       filter = StudentFilterType::New();
  filter->SetModel(model);
  filter->SetInput(MakeObliqueHead());
  unsigned int runs = 0;
  auto         count = itk::CStyleCommand::New();
  count->SetClientData(&runs);
  count->SetCallback(
    [](itk::Object *, const itk::EventObject &, void * data) { ++*static_cast<unsigned int *>(data); });
  filter->AddObserver(itk::StartEvent(), count);
  filter->Update();
  const float *            probability = filter->GetProbabilityOutput()->GetBufferPointer();
  const std::vector<float> before(
    probability, probability + filter->GetProbabilityOutput()->GetBufferedRegion().GetNumberOfPixels());
  filter->Update();
  EXPECT_EQ(runs, 1u); // nothing changed: the output is up to date

  // Other weights in the same model object (as a trainer or Load would leave them).
  model->Initialize(RoleEnum::Student, model->GetArchitecture(), model->GetContract(), 8);
  filter->Update();
  EXPECT_EQ(runs, 2u);
  probability = filter->GetProbabilityOutput()->GetBufferPointer();
  EXPECT_FALSE(std::equal(before.begin(), before.end(), probability));
}

TEST(KDBrainExtractionFilters, TheThreadCountOfLibTorchIsPutBack)
{
  KDBrainExtractionTorchModel::SetNumberOfThreads(1);
  auto filter = StudentFilterType::New();
  filter->SetModel(MakeTinyModel(RoleEnum::Student));
  filter->SetInput(MakeObliqueHead());
  filter->SetNumberOfTorchThreads(2);
  filter->Update();
  EXPECT_EQ(KDBrainExtractionTorchModel::GetNumberOfThreads(), 1u);
}

TEST(KDBrainExtractionFilters, AModelSharedByFiltersInTwoThreadsGivesEachTheSameMask)
{
  const auto model = MakeTinyModel(RoleEnum::Student);
  const auto head = MakeObliqueHead();
  auto       reference = StudentFilterType::New();
  reference->SetModel(model);
  reference->SetInput(head);
  reference->Update();
  const auto *             expected = reference->GetMaskOutput();
  const std::size_t        n = expected->GetBufferedRegion().GetNumberOfPixels();
  std::vector<std::size_t> differences(2, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 2; ++t)
  {
    threads.emplace_back([&, t] {
      for (int repeat = 0; repeat < 3; ++repeat)
      {
        auto filter = StudentFilterType::New();
        filter->SetModel(model);
        filter->SetDevice(t == 0 ? "cpu" : "auto"); // SetDevice on the shared model while the other predicts
        filter->SetInput(head);
        filter->Update();
        for (std::size_t i = 0; i < n; ++i)
        {
          differences[t] += filter->GetMaskOutput()->GetBufferPointer()[i] != expected->GetBufferPointer()[i];
        }
      }
    });
  }
  for (auto & thread : threads)
  {
    thread.join();
  }
  EXPECT_EQ(differences, (std::vector<std::size_t>{ 0, 0 }));
}

TEST(KDBrainExtractionFilters, ANewThresholdOrBorderReusesTheNetworksProbability)
{
  const auto model = MakeTinyModel(RoleEnum::Student);
  const auto head = MakeObliqueHead();
  auto       filter = StudentFilterType::New();
  filter->SetModel(model);
  filter->SetInput(head);
  // The network reports progress as it goes; a reused probability does not.
  std::vector<float> progress;
  auto               record = itk::CStyleCommand::New();
  record->SetClientData(&progress);
  record->SetCallback([](itk::Object * caller, const itk::EventObject &, void * data) {
    static_cast<std::vector<float> *>(data)->push_back(static_cast<itk::ProcessObject *>(caller)->GetProgress());
  });
  filter->AddObserver(itk::ProgressEvent(), record);
  auto networkReports = [&progress] {
    return std::count_if(progress.begin(), progress.end(), [](float p) { return p > 0.0f && p < 0.9f; });
  };
  filter->SetThreshold(0.5);
  filter->Update();
  EXPECT_GT(networkReports(), 0);

  for (const double threshold : { 0.3, 0.7 })
  {
    progress.clear();
    filter->SetThreshold(threshold);
    filter->SetMaskBorder(threshold > 0.5 ? -2.0 : 2.0);
    filter->Update();
    EXPECT_EQ(networkReports(), 0) << "the network ran again for threshold " << threshold;
    // The same mask as a filter that runs the network anew.
    auto fresh = StudentFilterType::New();
    fresh->SetModel(model);
    fresh->SetInput(head);
    fresh->SetThreshold(threshold);
    fresh->SetMaskBorder(threshold > 0.5 ? -2.0 : 2.0);
    fresh->Update();
    const std::size_t n = head->GetLargestPossibleRegion().GetNumberOfPixels();
    EXPECT_TRUE(std::equal(fresh->GetMaskOutput()->GetBufferPointer(),
                           fresh->GetMaskOutput()->GetBufferPointer() + n,
                           filter->GetMaskOutput()->GetBufferPointer()));
  }

  // Mirroring changes what the network sees: it runs again.
  progress.clear();
  filter->TestTimeMirroringOn();
  filter->Update();
  EXPECT_GT(networkReports(), 0);
}
