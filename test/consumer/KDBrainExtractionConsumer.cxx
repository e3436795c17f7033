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

#include "itksys/SystemTools.hxx"

#include <cstdlib>
#include <iostream>

// A downstream program: the student with its default model, which the
// installed library finds next to itself, on a head.
int
main(int argc, char * argv[])
{
  if (argc != 3)
  {
    std::cerr << "Usage: " << argv[0] << " head mask" << std::endl;
    return EXIT_FAILURE;
  }
  using ImageType = itk::Image<float, 3>;
  using MaskType = itk::Image<unsigned char, 3>;
  using ModelType = itk::KDBrainExtractionTorchModel;
  try
  {
    // The model the library chose is the one the package says it installed.
    const std::string chosen = itksys::SystemTools::GetRealPath(ModelType::GetDefaultModelDirectory());
    const std::string installed = itksys::SystemTools::GetRealPath(KDBrainExtraction_MODEL_DIR);
    std::cout << "Default model folder: " << chosen << std::endl;
    if (chosen != installed)
    {
      std::cerr << "The library looks for its models in " << chosen << ", but they are installed in " << installed
                << std::endl;
      return EXIT_FAILURE;
    }
    auto filter = itk::KDStudentMaskFilter<ImageType, MaskType>::New();
    filter->SetInput(itk::ReadImage<ImageType>(argv[1]));
    filter->SetNumberOfTorchThreads(2);
    itk::WriteImage(filter->GetMaskOutput(), argv[2], true);
  }
  catch (const itk::ExceptionObject & error)
  {
    std::cerr << error.GetDescription() << std::endl;
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
