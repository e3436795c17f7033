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

// Paints synthetic T1w-, T2w-, PDw-like or random-contrast heads from a real
// T1w head and its brain label map, as the trainer does with --synthetic:
// HeadTissueClassImageFilter, then HeadContrastSynthesisImageFilter.
// Usage: KDBrainExtractionSynthesizeContrast T1 LABELS MASK OUT_PREFIX [SEED]
// Writes OUT_PREFIX_classes.nii.gz and OUT_PREFIX_{t1w,t2w,pdw,random}.nii.gz.

#include "itkHeadContrastSynthesisImageFilter.h"
#include "itkHeadTissueClassImageFilter.h"
#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"

#include <cstdlib>
#include <iostream>
#include <string>

int
main(int argc, char * argv[])
{
  if (argc < 5)
  {
    std::cerr << "Usage: " << argv[0] << " T1 LABELS MASK OUT_PREFIX [SEED]\n";
    return 2;
  }
  using ImageType = itk::Image<float, 3>;
  using LabelImageType = itk::Image<unsigned short, 3>;
  using ClassImageType = itk::Image<unsigned char, 3>;
  using ContrastFamily = itk::HeadTissueEnums::ContrastFamily;
  const std::string prefix = argv[4];
  const uint64_t    seed = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 1;
  try
  {
    auto classes = itk::HeadTissueClassImageFilter<ImageType, LabelImageType, ClassImageType>::New();
    classes->SetInput(itk::ReadImage<ImageType>(argv[1]));
    classes->SetLabelImage(itk::ReadImage<LabelImageType>(argv[2]));
    classes->SetBrainMaskImage(itk::ReadImage<LabelImageType>(argv[3]));
    classes->Update();
    itk::WriteImage(classes->GetOutput(), prefix + "_classes.nii.gz", true);
    const auto & brain = classes->GetBrainCentres();
    const auto & head = classes->GetNonBrainCentres();
    std::cout << "T1w centres: brain CSF/GM/WM " << brain[0] << " " << brain[1] << " " << brain[2]
              << "; non-brain dark/intermediate/bright " << head[0] << " " << head[1] << " " << head[2] << "\n";

    const std::pair<ContrastFamily, const char *> families[] = { { ContrastFamily::T1w, "t1w" },
                                                                 { ContrastFamily::T2w, "t2w" },
                                                                 { ContrastFamily::PDw, "pdw" },
                                                                 { ContrastFamily::Random, "random" } };
    for (const auto & family : families)
    {
      auto synthesis = itk::HeadContrastSynthesisImageFilter<ClassImageType, ImageType>::New();
      synthesis->SetInput(classes->GetOutput());
      synthesis->SetContrast(family.first);
      synthesis->SetSeed(seed);
      synthesis->Update();
      itk::WriteImage(synthesis->GetOutput(), prefix + "_" + family.second + ".nii.gz", true);
    }
  }
  catch (const itk::ExceptionObject & error)
  {
    std::cerr << "error: " << error.GetDescription() << "\n";
    return 1;
  }
  return 0;
}
