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

#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkKDStudentMaskFilter.h"
#include "itkTestingMacros.h"

#include <iostream>
#include <string>

// Runs the student on a head, writes the mask, and checks that the mask lies
// on the input's grid and agrees with the reference mask (Dice >= minimum).
int
itkKDStudentMaskFilterTest(int argc, char * argv[])
{
  if (argc < 5)
  {
    std::cerr << "Missing parameters." << std::endl;
    std::cerr << "Usage: " << itkNameOfTestExecutableMacro(argv)
              << " inputImage referenceMask outputMask minimumDice [modelFile [mirror]]" << std::endl;
    return EXIT_FAILURE;
  }
  using InputImageType = itk::Image<short, 3>;
  using MaskImageType = itk::Image<unsigned char, 3>;
  using FilterType = itk::KDStudentMaskFilter<InputImageType, MaskImageType>;

  auto filter = FilterType::New();
  ITK_EXERCISE_BASIC_OBJECT_METHODS(filter, KDStudentMaskFilter, KDBrainExtractionImageFilterBase);

  ITK_TEST_SET_GET_VALUE(0.5, filter->GetThreshold());
  ITK_TEST_SET_GET_BOOLEAN(filter, KeepLargestComponent, true);
  ITK_TEST_SET_GET_BOOLEAN(filter, FillHoles, true);
  ITK_TEST_SET_GET_VALUE(0.0, filter->GetMaskBorder());
  // "mirror": test-time mirroring, compared with its own baseline.
  ITK_TEST_SET_GET_BOOLEAN(filter, TestTimeMirroring, argc > 6 && std::string(argv[6]) == "mirror");
  filter->SetDevice("cpu");
  ITK_TEST_SET_GET_VALUE(std::string("cpu"), std::string(filter->GetDevice()));
  filter->SetNumberOfTorchThreads(2);
  ITK_TEST_SET_GET_VALUE(2u, filter->GetNumberOfTorchThreads());
  if (argc > 5)
  {
    filter->SetModelFileName(argv[5]);
    ITK_TEST_SET_GET_VALUE(std::string(argv[5]), std::string(filter->GetModelFileName()));
  }

  InputImageType::Pointer input;
  ITK_TRY_EXPECT_NO_EXCEPTION(input = itk::ReadImage<InputImageType>(argv[1]));
  MaskImageType::Pointer reference;
  ITK_TRY_EXPECT_NO_EXCEPTION(reference = itk::ReadImage<MaskImageType>(argv[2]));

  filter->SetInput(input);
  ITK_TRY_EXPECT_NO_EXCEPTION(filter->Update());
  ITK_TRY_EXPECT_NO_EXCEPTION(itk::WriteImage(filter->GetMaskOutput(), argv[3], true));

  // Geometry of every output is the input's, exactly.
  for (const itk::ImageBase<3> * output : { static_cast<const itk::ImageBase<3> *>(filter->GetMaskOutput()),
                                            static_cast<const itk::ImageBase<3> *>(filter->GetProbabilityOutput()),
                                            static_cast<const itk::ImageBase<3> *>(filter->GetMaskedOutput()) })
  {
    ITK_TEST_EXPECT_EQUAL(output->GetLargestPossibleRegion(), input->GetLargestPossibleRegion());
    ITK_TEST_EXPECT_EQUAL(output->GetOrigin(), input->GetOrigin());
    ITK_TEST_EXPECT_EQUAL(output->GetSpacing(), input->GetSpacing());
    ITK_TEST_EXPECT_EQUAL(output->GetDirection(), input->GetDirection());
  }

  const auto *      mask = filter->GetMaskOutput()->GetBufferPointer();
  const auto *      masked = filter->GetMaskedOutput()->GetBufferPointer();
  const auto *      truth = reference->GetBufferPointer();
  const auto *      original = input->GetBufferPointer();
  const std::size_t numberOfVoxels = input->GetLargestPossibleRegion().GetNumberOfPixels();
  std::size_t       intersection = 0;
  std::size_t       predicted = 0;
  std::size_t       expected = 0;
  for (std::size_t i = 0; i < numberOfVoxels; ++i)
  {
    if (mask[i] > 1 || masked[i] != (mask[i] ? original[i] : 0))
    {
      std::cerr << "Test failed: voxel " << i << " has mask " << int(mask[i]) << " and masked value " << masked[i]
                << std::endl;
      return EXIT_FAILURE;
    }
    predicted += mask[i];
    expected += truth[i] > 0;
    intersection += mask[i] && truth[i] > 0;
  }
  const double dice = 2.0 * intersection / static_cast<double>(predicted + expected);
  const double minimumDice = std::stod(argv[4]);
  std::cout << "Dice against the reference mask: " << dice << " (minimum " << minimumDice << ")" << std::endl;
  if (!(dice >= minimumDice))
  {
    std::cerr << "Test failed: Dice " << dice << " is below " << minimumDice << std::endl;
    return EXIT_FAILURE;
  }
  std::cout << "Test finished." << std::endl;
  return EXIT_SUCCESS;
}
