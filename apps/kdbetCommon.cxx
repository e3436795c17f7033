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
#include "kdbetCommon.h"

#include "itkImageFileReader.h"
#include "itkImageIOFactory.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <vector>
#include <zlib.h>
#include <thread>

namespace kdbet
{
/** All cores: LibTorch's own default here is one thread (measured: a 2 mm
 * head took 13.6 s with 1 thread, 8.8 s with 2 on a 2-core machine). */
unsigned int
DefaultNumberOfThreads()
{
  return std::max(1u, std::thread::hardware_concurrency());
}


namespace
{
/** Reads a NIfTI file's voxels (plain or gzipped) as stored, because ITK's
 * reader hides problems: a file that ends early reads as zeros, and NaN
 * voxels read as 0. Throws, naming the file, if the data are shorter than the
 * header says, the compressed stream is corrupt, float voxels are NaN or
 * infinite, or the header's voxel spacing is zero or negative (ITK would read
 * 0 as 1 mm). */
void
CheckNiftiVoxels(const std::string & fileName, const itk::ImageIOBase * io)
{
  gzFile file = gzopen(fileName.c_str(), "rb");
  if (file == nullptr)
  {
    itkGenericExceptionMacro(<< fileName << ": cannot open the file");
  }
  constexpr unsigned int headerBytes = 348;
  std::vector<char>      header(headerBytes);
  int                    count = gzread(file, header.data(), headerBytes);
  // sizeof_hdr (348) tells the byte order; vox_offset is a float at byte 108.
  int32_t size = 0;
  std::memcpy(&size, header.data(), sizeof(size));
  const bool swap = size != static_cast<int32_t>(headerBytes);
  auto       ordered = [swap](char * bytes, std::size_t length) {
    if (swap)
    {
      std::reverse(bytes, bytes + length);
    }
  };
  auto readFloat = [&header, &ordered](std::size_t at) {
    ordered(header.data() + at, 4);
    float value = 0.0f;
    std::memcpy(&value, header.data() + at, sizeof(value));
    return value;
  };
  if (count == static_cast<int>(headerBytes))
  {
    // ITK reads a zero pixdim as 1 mm and a negative one as its magnitude.
    const float spacing[3] = { readFloat(80), readFloat(84), readFloat(88) };
    if (!(spacing[0] > 0.0f && spacing[1] > 0.0f && spacing[2] > 0.0f) || !std::isfinite(spacing[0]) ||
        !std::isfinite(spacing[1]) || !std::isfinite(spacing[2]))
    {
      gzclose(file);
      itkGenericExceptionMacro(<< fileName << ": invalid voxel spacing in the header (pixdim " << spacing[0] << " x "
                               << spacing[1] << " x " << spacing[2] << "; must be positive)");
    }
  }
  const float offset = readFloat(108);
  // The stored type: ITK reports the rescaled one (float when scl_slope is set).
  auto readShort = [&header, &ordered](std::size_t at) {
    ordered(header.data() + at, 2);
    int16_t value = 0;
    std::memcpy(&value, header.data() + at, sizeof(value));
    return value;
  };
  const int16_t            datatype = readShort(70);
  const std::size_t        componentBytes = std::max<int16_t>(8, readShort(72)) / 8;
  const bool               isFloat = datatype == 16 || datatype == 64; // DT_FLOAT32, DT_FLOAT64
  const unsigned long long voxelBytes = io->GetImageSizeInComponents() * componentBytes;
  unsigned long long       skip = offset > headerBytes ? static_cast<unsigned long long>(offset) - headerBytes : 4;
  unsigned long long       read = 0;
  std::size_t              nonFinite = 0;
  std::vector<char>        buffer(componentBytes << 18);
  while (count > 0 && skip > 0)
  {
    count = gzread(file, buffer.data(), static_cast<unsigned int>(std::min<unsigned long long>(skip, buffer.size())));
    skip -= count > 0 ? static_cast<unsigned long long>(count) : skip;
  }
  while (count > 0 && read < voxelBytes)
  {
    count = gzread(
      file, buffer.data(), static_cast<unsigned int>(std::min<unsigned long long>(voxelBytes - read, buffer.size())));
    if (count <= 0)
    {
      break;
    }
    read += static_cast<unsigned long long>(count);
    for (std::size_t at = 0; isFloat && at + componentBytes <= static_cast<std::size_t>(count); at += componentBytes)
    {
      ordered(buffer.data() + at, componentBytes);
      double value = 0.0;
      if (componentBytes == 4)
      {
        float single = 0.0f;
        std::memcpy(&single, buffer.data() + at, 4);
        value = single;
      }
      else
      {
        std::memcpy(&value, buffer.data() + at, 8);
      }
      nonFinite += std::isfinite(value) ? 0 : 1;
    }
  }
  int               error = Z_OK;
  const std::string message = count < 0 ? gzerror(file, &error) : std::string();
  // gzclose also reports a gzip stream that ended before its trailer.
  const int closed = gzclose(file);
  if (count < 0 || (closed != Z_OK && read < voxelBytes))
  {
    itkGenericExceptionMacro(<< fileName << ": truncated or corrupt compressed file"
                             << (message.empty() ? std::string() : " (" + message + ")"));
  }
  if (read < voxelBytes)
  {
    itkGenericExceptionMacro(<< fileName << ": truncated file (the header describes " << voxelBytes
                             << " bytes of voxels, the file holds " << read << ")");
  }
  if (nonFinite > 0)
  {
    itkGenericExceptionMacro(<< fileName << ": " << nonFinite << " voxels are NaN or infinite");
  }
}
} // namespace

/** Reads a scalar 3D image as float, refusing what brain extraction cannot
 * use with a message that names the file and the problem. */
ImageType::Pointer
ReadHeadImage(const std::string & fileName)
{
  if (!itksys::SystemTools::FileExists(fileName, true))
  {
    itkGenericExceptionMacro(<< fileName << ": no such file");
  }
  auto io = itk::ImageIOFactory::CreateImageIO(fileName.c_str(), itk::ImageIOFactory::IOFileModeEnum::ReadMode);
  if (io.IsNull())
  {
    itkGenericExceptionMacro(<< fileName << ": not an image in a format ITK can read");
  }
  io->SetFileName(fileName);
  try
  {
    io->ReadImageInformation();
  }
  catch (const itk::ExceptionObject & error)
  {
    itkGenericExceptionMacro(<< fileName << ": unreadable image header (" << DescribeError(error) << ")");
  }
  unsigned int dimensions = io->GetNumberOfDimensions();
  // Trailing axes of size 1 (a 4D file holding one volume) are harmless.
  while (dimensions > 3 && io->GetDimensions(dimensions - 1) == 1)
  {
    --dimensions;
  }
  if (io->GetDimensions(0) < 8 || (dimensions > 1 && io->GetDimensions(1) < 8))
  {
    std::ostringstream size;
    for (unsigned int d = 0; d < io->GetNumberOfDimensions(); ++d)
    {
      size << (d ? "x" : "") << io->GetDimensions(d);
    }
    itkGenericExceptionMacro(<< fileName << ": " << size.str()
                             << " voxels, not a head volume (every axis needs at least 8 voxels)");
  }
  if (dimensions < 3 || (dimensions == 3 && io->GetDimensions(2) == 1))
  {
    itkGenericExceptionMacro(<< fileName << ": a 2D image; brain extraction needs a 3D volume");
  }
  if (dimensions > 3)
  {
    itkGenericExceptionMacro(<< fileName << ": a " << dimensions << "D image with " << io->GetDimensions(3)
                             << " volumes; extract one 3D volume first");
  }
  // Refuse absurd headers before allocating their voxels: 1024^3 voxels
  // (4 GiB as float) is far beyond any head scan.
  double numberOfVoxels = 1.0;
  for (unsigned int d = 0; d < 3; ++d)
  {
    numberOfVoxels *= static_cast<double>(io->GetDimensions(d));
  }
  if (numberOfVoxels > 1024.0 * 1024.0 * 1024.0)
  {
    itkGenericExceptionMacro(<< fileName << ": the header claims " << io->GetDimensions(0) << "x"
                             << io->GetDimensions(1) << "x" << io->GetDimensions(2)
                             << " voxels, too many for a head volume");
  }
  if (io->GetNumberOfComponents() != 1)
  {
    itkGenericExceptionMacro(<< fileName << ": " << io->GetNumberOfComponents()
                             << " components per voxel (vector or RGB); a scalar image is needed");
  }
  const std::string extension = itksys::SystemTools::LowerCase(ImageExtension(fileName));
  if (extension == ".nii" || extension == ".nii.gz")
  {
    CheckNiftiVoxels(fileName, io);
  }
  auto reader = itk::ImageFileReader<ImageType>::New();
  reader->SetFileName(fileName);
  try
  {
    reader->Update();
  }
  catch (const itk::ExceptionObject & error)
  {
    itkGenericExceptionMacro(<< fileName
                             << ": cannot read the voxels (truncated or corrupt file: " << DescribeError(error) << ")");
  }
  ImageType::Pointer image = reader->GetOutput();
  itk::KDBrainExtractionPreprocessing::VerifyImage(image, fileName);
  return image;
}


std::string
DescribeError(const itk::ExceptionObject & error)
{
  std::string message = error.GetDescription();
  message = message.substr(0, message.find('\n'));
  const std::string prefix = "ITK ERROR: ";
  if (message.rfind(prefix, 0) == 0)
  {
    message.erase(0, prefix.size());
  }
  return message;
}

/** The extension of an image file name, double ones (.nii.gz) included. */
std::string
ImageExtension(const std::string & fileName)
{
  const std::string name = itksys::SystemTools::GetFilenameName(fileName);
  for (const char * twoPart : { ".nii.gz", ".nrrd.gz", ".mha.gz" })
  {
    const std::string ending = twoPart;
    if (name.size() > ending.size() && name.compare(name.size() - ending.size(), ending.size(), ending) == 0)
    {
      return ending;
    }
  }
  return itksys::SystemTools::GetFilenameLastExtension(name);
}

/** Fails early, before any work, if \a fileName cannot be written. */
void
CheckWritable(const std::string & fileName, bool isImage)
{
  std::string directory = itksys::SystemTools::GetFilenamePath(fileName);
  if (directory.empty())
  {
    directory = ".";
  }
  if (!itksys::SystemTools::FileIsDirectory(directory))
  {
    itkGenericExceptionMacro(<< fileName << ": the output folder " << directory << " does not exist");
  }
  if (::access(directory.c_str(), W_OK) != 0)
  {
    itkGenericExceptionMacro(<< fileName << ": the output folder " << directory << " is not writable");
  }
  if (!isImage)
  {
    return;
  }
  auto io = itk::ImageIOFactory::CreateImageIO(fileName.c_str(), itk::ImageIOFactory::IOFileModeEnum::WriteMode);
  if (io.IsNull())
  {
    itkGenericExceptionMacro(<< fileName << ": no image format for the extension '" << ImageExtension(fileName) << "'");
  }
}

void
WriteTextAtomically(const std::string & text, const std::string & fileName, const std::string & what)
{
  std::string       directory = itksys::SystemTools::GetFilenamePath(fileName);
  const std::string temporary = (directory.empty() ? std::string() : directory + "/") + "." +
                                itksys::SystemTools::GetFilenameName(fileName) + ".kdbet-" + std::to_string(::getpid());
  {
    std::ofstream file(temporary);
    file << text;
    file.close(); // a full disk can show only when the last block is written
    if (file.fail())
    {
      std::remove(temporary.c_str());
      itkGenericExceptionMacro(<< fileName << ": cannot write " << what);
    }
  }
  if (std::rename(temporary.c_str(), fileName.c_str()) != 0)
  {
    std::remove(temporary.c_str());
    itkGenericExceptionMacro(<< fileName << ": cannot move " << what << " into place");
  }
}

ModelType::Pointer
LoadModel(const std::string & fileName, ModelType::RoleEnum role)
{
  const std::string path = fileName.empty() ? ModelType::FindDefaultModelFile(role) : fileName;
  if (path.empty())
  {
    itkGenericExceptionMacro(<< "no default " << ModelType::RoleToString(role)
                             << " model was found (set KDBET_MODEL_DIR or pass --model)");
  }
  auto model = ModelType::New();
  model->Load(path);
  if (model->GetRole() != role)
  {
    itkGenericExceptionMacro(<< path << ": a " << ModelType::RoleToString(model->GetRole()) << " model, but a "
                             << ModelType::RoleToString(role) << " model is needed here");
  }
  return model;
}


/** A mask read as 0/1 floats (any non-zero voxel is inside). */
ImageType::Pointer
ReadMaskAsBinary(const std::string & fileName, double threshold)
{
  const auto image = ReadHeadImage(fileName);
  float *    voxels = image->GetBufferPointer();
  for (std::size_t i = 0; i < image->GetBufferedRegion().GetNumberOfPixels(); ++i)
  {
    voxels[i] = voxels[i] >= threshold ? 1.0f : 0.0f;
  }
  return image;
}
} // namespace kdbet
