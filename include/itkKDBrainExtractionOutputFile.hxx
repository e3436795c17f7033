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
#ifndef itkKDBrainExtractionOutputFile_hxx
#define itkKDBrainExtractionOutputFile_hxx

#include "itkKDBrainExtractionOutputFile.h"

#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkKDBrainExtractionInputFile.h"
#include "itksys/SystemTools.hxx"

#include <algorithm>
#include <cstdio>

namespace itk
{
template <typename TImage>
void
KDBrainExtractionOutputFile::VerifyWrittenImage(const TImage * image, const std::string & fileName)
{
  const std::string extension = itksys::SystemTools::LowerCase(KDBrainExtractionInputFile::ImageExtension(fileName));
  if (extension == ".nii" || extension == ".nii.gz")
  {
    KDBrainExtractionInputFile::CheckNiftiFileIsComplete(fileName);
    return;
  }
  auto reader = ImageFileReader<TImage>::New();
  reader->SetFileName(fileName);
  reader->Update();
  const TImage * written = reader->GetOutput();
  const auto     count = image->GetBufferedRegion().GetNumberOfPixels();
  if (written->GetBufferedRegion().GetSize() != image->GetBufferedRegion().GetSize() ||
      !std::equal(image->GetBufferPointer(), image->GetBufferPointer() + count, written->GetBufferPointer()))
  {
    itkGenericExceptionMacro(<< fileName << ": the voxels read back differ from those written");
  }
}

template <typename TImage>
std::string
KDBrainExtractionOutputFile::StageImage(const TImage * image, const std::string & fileName)
{
  CheckOutputName(fileName);
  const std::string temporary = TemporaryName(fileName);
  Register(temporary);
  auto writer = ImageFileWriter<TImage>::New();
  writer->SetInput(image);
  writer->SetFileName(temporary);
  writer->UseCompressionOn();
  try
  {
    writer->Update();
  }
  catch (const ExceptionObject & error)
  {
    Discard(temporary);
    std::string message = error.GetDescription();
    itkGenericExceptionMacro(<< fileName << ": cannot write (" << message.substr(0, message.find('\n')) << ")");
  }
  try
  {
    VerifyWrittenImage(image, temporary);
  }
  catch (const ExceptionObject &)
  {
    Discard(temporary);
    itkGenericExceptionMacro(<< fileName << ": the written file is incomplete (disk full or over quota?)");
  }
  return temporary;
}

template <typename TImage>
void
KDBrainExtractionOutputFile::WriteImage(const TImage * image, const std::string & fileName)
{
  MoveIntoPlace(StageImage(image, fileName), fileName);
}
} // end namespace itk

#endif // itkKDBrainExtractionOutputFile_hxx
