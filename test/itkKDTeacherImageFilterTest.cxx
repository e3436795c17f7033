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
#include "itkKDTeacherImageFilter.h"
#include "itkTestingMacros.h"

#include <cmath>
#include <iostream>

// Runs the teacher on a head, writes its brain-only image, and checks that it
// lies on the input's grid, is in the input's intensity units, and correlates
// with the reference brain-only image (input x reference mask).
int
itkKDTeacherImageFilterTest(int argc, char * argv[])
{
  if (argc < 5)
  {
    std::cerr << "Missing parameters." << std::endl;
    std::cerr << "Usage: " << itkNameOfTestExecutableMacro(argv)
              << " inputImage referenceMask outputImage minimumCorrelation [modelFile]" << std::endl;
    return EXIT_FAILURE;
  }
  using ImageType = itk::Image<float, 3>;
  using MaskImageType = itk::Image<unsigned char, 3>;
  // An integral output type: rounded, clamped, and a compact baseline.
  using OutputImageType = itk::Image<short, 3>;
  using FilterType = itk::KDTeacherImageFilter<ImageType, OutputImageType>;

  auto filter = FilterType::New();
  ITK_EXERCISE_BASIC_OBJECT_METHODS(filter, KDTeacherImageFilter, KDBrainExtractionImageFilterBase);
  filter->SetBackgroundLevel(1e-3);
  ITK_TEST_SET_GET_VALUE(1e-3, filter->GetBackgroundLevel());
  filter->SetDevice("cpu");
  if (argc > 5)
  {
    filter->SetModelFileName(argv[5]);
  }

  ImageType::Pointer input;
  ITK_TRY_EXPECT_NO_EXCEPTION(input = itk::ReadImage<ImageType>(argv[1]));
  MaskImageType::Pointer reference;
  ITK_TRY_EXPECT_NO_EXCEPTION(reference = itk::ReadImage<MaskImageType>(argv[2]));
  filter->SetInput(input);
  ITK_TRY_EXPECT_NO_EXCEPTION(filter->Update());
  ITK_TRY_EXPECT_NO_EXCEPTION(itk::WriteImage(filter->GetOutput(), argv[3], true));

  const OutputImageType * output = filter->GetOutput();
  ITK_TEST_EXPECT_EQUAL(output->GetLargestPossibleRegion(), input->GetLargestPossibleRegion());
  ITK_TEST_EXPECT_EQUAL(output->GetOrigin(), input->GetOrigin());
  ITK_TEST_EXPECT_EQUAL(output->GetSpacing(), input->GetSpacing());
  ITK_TEST_EXPECT_EQUAL(output->GetDirection(), input->GetDirection());

  // Pearson correlation with the reference brain-only image.
  const std::size_t numberOfVoxels = input->GetLargestPossibleRegion().GetNumberOfPixels();
  double            sumX = 0, sumY = 0, sumXX = 0, sumYY = 0, sumXY = 0;
  double            brainOutput = 0, brainInput = 0;
  for (std::size_t i = 0; i < numberOfVoxels; ++i)
  {
    const bool   inBrain = reference->GetBufferPointer()[i] != 0;
    const double x = output->GetBufferPointer()[i];
    const double y = inBrain ? input->GetBufferPointer()[i] : 0.0;
    sumX += x;
    sumY += y;
    sumXX += x * x;
    sumYY += y * y;
    sumXY += x * y;
    brainOutput += inBrain ? x : 0.0;
    brainInput += y;
  }
  const double n = static_cast<double>(numberOfVoxels);
  const double correlation =
    (sumXY - sumX * sumY / n) / std::sqrt((sumXX - sumX * sumX / n) * (sumYY - sumY * sumY / n));
  const double minimumCorrelation = std::stod(argv[4]);
  std::cout << "Correlation with the reference brain image: " << correlation << " (minimum " << minimumCorrelation
            << "); mean intensity " << sumX / n << " (reference brain-only image " << sumY / n << ")" << std::endl;
  if (!(correlation >= minimumCorrelation))
  {
    std::cerr << "Test failed: correlation " << correlation << " is below " << minimumCorrelation << std::endl;
    return EXIT_FAILURE;
  }
  // Input units: inside the brain the output's mean is the input's within 25%.
  std::cout << "Mean inside the reference brain: " << brainOutput / brainInput << " x the input's" << std::endl;
  if (!(std::abs(brainOutput - brainInput) <= 0.25 * brainInput))
  {
    std::cerr << "Test failed: the output is not in the input's intensity units" << std::endl;
    return EXIT_FAILURE;
  }
  std::cout << "Test finished." << std::endl;
  return EXIT_SUCCESS;
}
