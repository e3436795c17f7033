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

// Paints a head of a contrast family from a whole-head label map in
// FreeSurfer codes (SynthSeg's training maps), as the trainer does with
// --label-maps, and writes its brain mask (KDBrainExtractionWholeHeadLabels'
// rule), both on the map's grid: synthetic heads of unseen subjects whose
// masks are exact at the map's resolution, for evaluation.
// Usage: KDBrainExtractionPaintLabelMap LABELS t1w|t2w|pdw|flair|random SEED OUT_IMAGE OUT_MASK
// The painting's own thick-slice loss is off: resample the image to the grid
// wanted (KDBrainExtractionResampleHead) to evaluate other resolutions.

#include "itkHeadContrastSynthesisImageFilter.h"
#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkKDBrainExtractionWholeHeadLabels.h"

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

int
main(int argc, char * argv[])
{
  if (argc != 6)
  {
    std::cerr << "Usage: " << argv[0] << " LABELS t1w|t2w|pdw|flair|random SEED OUT_IMAGE OUT_MASK\n";
    return 2;
  }
  using WholeHeadLabels = itk::KDBrainExtractionWholeHeadLabels;
  using ImageType = itk::Image<float, 3>;
  using ContrastFamily = itk::HeadTissueEnums::ContrastFamily;
  const std::map<std::string, ContrastFamily> families{ { "t1w", ContrastFamily::T1w },
                                                        { "t2w", ContrastFamily::T2w },
                                                        { "pdw", ContrastFamily::PDw },
                                                        { "flair", ContrastFamily::FLAIR },
                                                        { "random", ContrastFamily::Random } };
  const auto                                  family = families.find(argv[2]);
  if (family == families.end())
  {
    std::cerr << "unknown contrast family '" << argv[2] << "' (t1w, t2w, pdw, flair or random)\n";
    return 2;
  }
  try
  {
    const auto labels = itk::ReadImage<WholeHeadLabels::LabelImageType>(argv[1]);
    const auto mask = WholeHeadLabels::MakeBrainMask(labels, argv[1]);
    auto synthesis = itk::HeadContrastSynthesisImageFilter<WholeHeadLabels::TissueClassImageType, ImageType>::New();
    synthesis->SetInput(WholeHeadLabels::MakeTissueClasses(labels, mask));
    synthesis->SetContrast(family->second);
    synthesis->SetSeed(std::strtoull(argv[3], nullptr, 10));
    synthesis->SetMaximumSliceThicknessFactor(1.0);
    synthesis->Update();
    itk::WriteImage(synthesis->GetOutput(), argv[4], true);
    itk::WriteImage(mask, argv[5], true);
  }
  catch (const itk::ExceptionObject & error)
  {
    std::cerr << "error: " << error.GetDescription() << "\n";
    return 1;
  }
  return 0;
}
