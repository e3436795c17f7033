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
#include "itkKDBrainExtractionInputFile.h"

#include "itkImageFileReader.h"
#include "itkImageIOFactory.h"
#include "itk_zlib.h"
#include "itksys/SystemTools.hxx"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <vector>

namespace itk
{
namespace
{
std::string
FirstLine(const ExceptionObject & error)
{
  return KDBrainExtractionInputFile::DescribeError(error);
}

std::string
FormatSize(const std::vector<long long> & sizes)
{
  std::ostringstream text;
  for (std::size_t d = 0; d < sizes.size(); ++d)
  {
    text << (d ? "x" : "") << sizes[d];
  }
  return text.str();
}

bool
EndsWith(const std::string & text, const std::string & ending)
{
  return text.size() >= ending.size() && text.compare(text.size() - ending.size(), ending.size(), ending) == 0;
}

/** A NIfTI-1 or Analyze 7.5 header (348 bytes), byte order resolved. */
class AnalyzeHeader
{
public:
  AnalyzeHeader(const std::vector<char> & bytes, bool swap)
    : m_Bytes(bytes)
    , m_Swap(swap)
  {}

  int16_t
  Short(std::size_t at) const
  {
    return Read<int16_t>(at);
  }
  int32_t
  Int(std::size_t at) const
  {
    return Read<int32_t>(at);
  }
  float
  Float(std::size_t at) const
  {
    return Read<float>(at);
  }
  std::string
  Magic() const
  {
    return std::string(m_Bytes.data() + 344, 4);
  }

private:
  template <typename T>
  T
  Read(std::size_t at) const
  {
    std::array<char, sizeof(T)> bytes;
    std::memcpy(bytes.data(), m_Bytes.data() + at, sizeof(T));
    if (m_Swap)
    {
      std::reverse(bytes.begin(), bytes.end());
    }
    T value;
    std::memcpy(&value, bytes.data(), sizeof(T));
    return value;
  }

  const std::vector<char> & m_Bytes;
  bool                      m_Swap;
};

/** Reads up to \a count bytes of a plain or gzipped file; the number read,
 * or -1 with \a error set. */
class GzipStream
{
public:
  explicit GzipStream(const std::string & fileName)
    : m_File(gzopen(fileName.c_str(), "rb"))
  {
    if (m_File == nullptr)
    {
      itkGenericExceptionMacro(<< fileName << ": cannot open the file");
    }
  }
  ~GzipStream()
  {
    if (m_File != nullptr)
    {
      gzclose(m_File);
    }
  }
  ITK_DISALLOW_COPY_AND_MOVE(GzipStream);

  long long
  Read(char * buffer, std::size_t count)
  {
    const int read = gzread(m_File, buffer, static_cast<unsigned int>(std::min<std::size_t>(count, 1u << 30)));
    if (read < 0)
    {
      int error = Z_OK;
      m_Error = gzerror(m_File, &error);
    }
    return read;
  }

  /** Closes; false if the compressed stream ended before its trailer. */
  bool
  Close()
  {
    const int closed = gzclose(m_File);
    m_File = nullptr;
    return closed == Z_OK;
  }

  const std::string &
  GetError() const
  {
    return m_Error;
  }

private:
  gzFile      m_File;
  std::string m_Error;
};

/** Bits per voxel of the NIfTI data types ITK can read as a scalar image. */
const std::map<int, int> &
ScalarDataTypeBits()
{
  static const std::map<int, int> bits{ { 2, 8 },   { 4, 16 },   { 8, 32 },   { 16, 32 },   { 64, 64 },
                                        { 256, 8 }, { 512, 16 }, { 768, 32 }, { 1024, 64 }, { 1280, 64 } };
  return bits;
}

std::string
NonScalarDataTypeName(int datatype)
{
  switch (datatype)
  {
    case 1:
      return "binary (1 bit)";
    case 32:
    case 1792:
    case 2048:
      return "complex";
    case 128:
    case 2304:
      return "RGB/RGBA";
    case 1536:
      return "128-bit float";
    default:
      return {};
  }
}

/** Scans \a byteCount bytes of voxels from \a offset in \a dataFile: throws
 * if the file ends early, its compressed stream is corrupt, or float voxels
 * are NaN or infinite. */
void
ScanStoredVoxels(const std::string & fileName, const std::string & dataFile, unsigned long long offset,
                 unsigned long long byteCount, int bytesPerVoxel, bool isFloat, bool swap)
{
  GzipStream         stream(dataFile);
  std::vector<char>  buffer(static_cast<std::size_t>(bytesPerVoxel) << 18);
  unsigned long long skipped = 0;
  long long          count = 1;
  while (skipped < offset && count > 0)
  {
    count = stream.Read(buffer.data(),
                        static_cast<std::size_t>(std::min<unsigned long long>(offset - skipped, buffer.size())));
    skipped += count > 0 ? static_cast<unsigned long long>(count) : 0;
  }
  unsigned long long read = 0;
  std::size_t        nonFinite = 0;
  while (count > 0 && read < byteCount)
  {
    count = stream.Read(buffer.data(),
                        static_cast<std::size_t>(std::min<unsigned long long>(byteCount - read, buffer.size())));
    if (count <= 0)
    {
      break;
    }
    read += static_cast<unsigned long long>(count);
    for (std::size_t at = 0; isFloat && at + bytesPerVoxel <= static_cast<std::size_t>(count); at += bytesPerVoxel)
    {
      char * voxel = buffer.data() + at;
      if (swap)
      {
        std::reverse(voxel, voxel + bytesPerVoxel);
      }
      double value = 0.0;
      if (bytesPerVoxel == 4)
      {
        float single = 0.0f;
        std::memcpy(&single, voxel, 4);
        value = single;
      }
      else
      {
        std::memcpy(&value, voxel, 8);
      }
      nonFinite += std::isfinite(value) ? 0 : 1;
    }
  }
  const std::string error = stream.GetError();
  const bool        complete = stream.Close();
  if (count < 0 || (!complete && read < byteCount))
  {
    itkGenericExceptionMacro(<< fileName << ": truncated or corrupt compressed file"
                             << (error.empty() ? std::string() : " (" + error + ")"));
  }
  if (read < byteCount)
  {
    itkGenericExceptionMacro(<< fileName << ": truncated file (the header describes " << byteCount
                             << " bytes of voxels, " << (dataFile == fileName ? "the file" : dataFile) << " holds "
                             << read << ")");
  }
  if (nonFinite > 0)
  {
    itkGenericExceptionMacro(<< fileName << ": " << nonFinite << " voxels are NaN or infinite");
  }
}

void
CheckSpacing(const std::string & fileName, const std::array<double, 3> & spacing,
             const KDBrainExtractionInputFile::Limits & limits)
{
  for (const double value : spacing)
  {
    if (!(value >= limits.MinimumSpacing && value <= limits.MaximumSpacing))
    {
      itkGenericExceptionMacro(<< fileName << ": invalid voxel spacing " << spacing[0] << " x " << spacing[1] << " x "
                               << spacing[2] << " mm (each must be between " << limits.MinimumSpacing << " and "
                               << limits.MaximumSpacing << " mm)");
    }
  }
}

/** KDBrainExtractionInputFile::CheckFile for \a part, a file of the image
 * \a fileName (its \a role: "data file"); errors start with \a fileName. */
void
CheckPartFile(const std::string & fileName, const std::string & part, const char * role)
{
  try
  {
    KDBrainExtractionInputFile::CheckFile(part);
  }
  catch (const ExceptionObject & error)
  {
    if (part == fileName)
    {
      throw;
    }
    itkGenericExceptionMacro(<< fileName << ": its " << role << " " << FirstLine(error));
  }
}

/** How many bytes the zlib or gzip stream at \a offset in \a fileName
 * inflates to, up to \a wanted; \a error says why it stopped short. */
unsigned long long
InflatedBytes(const std::string & fileName, unsigned long long offset, unsigned long long wanted, std::string & error)
{
  std::ifstream stream(fileName, std::ios::binary);
  stream.seekg(static_cast<std::streamoff>(offset));
  z_stream zlib{};
  if (!stream || inflateInit2(&zlib, 15 + 32) != Z_OK) // 15 + 32: zlib or gzip header
  {
    error = "cannot start reading it";
    return 0;
  }
  std::vector<unsigned char> input(1 << 16);
  std::vector<unsigned char> output(1 << 18);
  unsigned long long         total = 0;
  int                        status = Z_OK;
  while (total < wanted && status != Z_STREAM_END)
  {
    if (zlib.avail_in == 0)
    {
      stream.read(reinterpret_cast<char *>(input.data()), static_cast<std::streamsize>(input.size()));
      if (stream.gcount() <= 0)
      {
        error = "the compressed data ends early";
        break;
      }
      zlib.next_in = input.data();
      zlib.avail_in = static_cast<uInt>(stream.gcount());
    }
    zlib.next_out = output.data();
    zlib.avail_out = static_cast<uInt>(output.size());
    status = inflate(&zlib, Z_NO_FLUSH);
    total += output.size() - zlib.avail_out;
    if (status != Z_OK && status != Z_STREAM_END)
    {
      error = zlib.msg != nullptr ? zlib.msg : "corrupt compressed data";
      break;
    }
  }
  inflateEnd(&zlib);
  return total;
}

/** The file \a name as a header file \a fileName refers to it: relative
 * names are in the header's folder. */
std::string
SiblingFile(const std::string & fileName, const std::string & name)
{
  const std::string folder = itksys::SystemTools::GetFilenamePath(fileName);
  return itksys::SystemTools::FileIsFullPath(name) || folder.empty() ? name : folder + "/" + name;
}

/** NRRD (.nrrd, .nhdr): a detached data file must be one regular file
 * (teem would open a FIFO and wait for a writer forever); checked before ITK
 * reads the header, which opens it. Teem checks the rest itself. */
void
CheckNrrdDataFile(const std::string & fileName)
{
  std::ifstream      stream(fileName, std::ios::binary);
  std::string        line;
  unsigned long long headerBytes = 0;
  while (headerBytes < (1u << 16) && std::getline(stream, line))
  {
    headerBytes += line.size() + 1;
    if (!line.empty() && line.back() == '\r')
    {
      line.pop_back();
    }
    if (line.empty())
    {
      break; // the end of the header
    }
    for (const char * key : { "data file:", "datafile:" })
    {
      if (line.rfind(key, 0) != 0)
      {
        continue;
      }
      const std::string name = line.substr(line.find_first_not_of(' ', std::strlen(key)) == std::string::npos
                                             ? line.size()
                                             : line.find_first_not_of(' ', std::strlen(key)));
      if (name.empty() || name.rfind("LIST", 0) == 0 || name.find(' ') != std::string::npos ||
          name.find('%') != std::string::npos)
      {
        itkGenericExceptionMacro(<< fileName << ": NRRD with several or no data files (" << line
                                 << ") is not read; convert it to one file");
      }
      CheckPartFile(fileName, SiblingFile(fileName, name), "data file");
    }
  }
}

/** Whether a MetaImage header field says True. */
bool
IsTrue(const std::map<std::string, std::string> & fields, const char * key)
{
  const auto field = fields.find(key);
  return field != fields.end() && (itksys::SystemTools::LowerCase(field->second) == "true" || field->second == "1");
}

/** A MetaImage header's fields and its length in bytes (where LOCAL voxels start). */
struct MetaImageHeader
{
  std::map<std::string, std::string> Fields;
  unsigned long long                 Bytes{ 0 };
};

/** Reads a MetaImage (.mha, .mhd) header and checks what ITK's MetaIO reader
 * would take on trust or fail on with several lines of its own on stderr:
 * numeric fields that are not finite numbers or not NDims of them, negative
 * spacings (it mirrors them away), text voxels, several data files. */
MetaImageHeader
ReadMetaImageHeader(const std::string & fileName)
{
  std::ifstream   stream(fileName, std::ios::binary);
  MetaImageHeader header;
  auto &          fields = header.Fields;
  std::string     line;
  auto            trim = [](const std::string & text) {
    const auto first = text.find_first_not_of(" \t\r");
    return first == std::string::npos ? std::string() : text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
  };
  while (header.Bytes < (1u << 16) && std::getline(stream, line))
  {
    header.Bytes += line.size() + (stream.eof() ? 0 : 1);
    const auto equals = line.find('=');
    if (equals != std::string::npos)
    {
      const std::string key = trim(line.substr(0, equals));
      fields[key] = trim(line.substr(equals + 1));
      if (key == "ElementDataFile")
      {
        break;
      }
    }
  }
  if (!fields.count("ElementDataFile"))
  {
    itkGenericExceptionMacro(<< fileName << ": a MetaImage header without ElementDataFile");
  }
  auto numbers = [&](const std::string & key) {
    std::vector<double> values;
    std::istringstream  tokens(fields[key]);
    std::string         token;
    while (tokens >> token)
    {
      char *       end = nullptr;
      const double value = std::strtod(token.c_str(), &end);
      if (end != token.c_str() + token.size() || !std::isfinite(value))
      {
        itkGenericExceptionMacro(<< fileName << ": invalid MetaImage header field " << key << " = " << fields[key]);
      }
      values.push_back(value);
    }
    return values;
  };
  const auto dimensions = fields.count("NDims") ? numbers("NDims") : std::vector<double>();
  if (dimensions.size() != 1 || !(dimensions[0] >= 1 && dimensions[0] <= 16) ||
      dimensions[0] != std::floor(dimensions[0]))
  {
    itkGenericExceptionMacro(<< fileName << ": invalid or missing NDims in the MetaImage header");
  }
  const auto axes = static_cast<std::size_t>(dimensions[0]);
  for (const char * key : { "DimSize",
                            "ElementSpacing",
                            "ElementSize",
                            "Offset",
                            "Position",
                            "Origin",
                            "CenterOfRotation",
                            "TransformMatrix",
                            "Rotation",
                            "Orientation" })
  {
    if (!fields.count(key) && std::string(key) != "DimSize")
    {
      continue;
    }
    const auto values = numbers(key);
    const bool matrix =
      std::string(key) == "TransformMatrix" || std::string(key) == "Rotation" || std::string(key) == "Orientation";
    const size_t expected = matrix ? axes * axes : axes;
    if (values.size() != expected)
    {
      itkGenericExceptionMacro(<< fileName << ": invalid MetaImage header field " << key << " = " << fields[key] << " ("
                               << expected << " numbers expected)");
    }
    for (const double value : values)
    {
      if (std::string(key) == "DimSize" && !(value >= 1 && value == std::floor(value)))
      {
        itkGenericExceptionMacro(<< fileName << ": invalid MetaImage header field DimSize = " << fields[key]);
      }
      if ((std::string(key) == "ElementSpacing" || std::string(key) == "ElementSize") && !(value > 0.0))
      {
        itkGenericExceptionMacro(<< fileName << ": invalid voxel spacing in the MetaImage header (" << key << " = "
                                 << fields[key] << "); spacings must be positive");
      }
    }
  }
  if (fields.count("BinaryData") && !IsTrue(fields, "BinaryData"))
  {
    itkGenericExceptionMacro(<< fileName << ": MetaImage with voxels stored as text (BinaryData = "
                             << fields["BinaryData"] << "); convert it to NIfTI or binary MetaImage");
  }
  const std::string dataName = fields["ElementDataFile"];
  if (dataName == "LIST" || dataName.find('%') != std::string::npos || dataName.find(' ') != std::string::npos)
  {
    itkGenericExceptionMacro(<< fileName << ": MetaImage with several data files (ElementDataFile = " << dataName
                             << ") is not read; convert it to one file");
  }
  return header;
}

/** The voxels of a MetaImage whose header passed ReadMetaImageHeader and
 * ITK's checks (\a io): a data file that is a regular file, holding at least
 * the bytes the header describes (MetaIO fills an uninitialised buffer from a
 * short one), compressed or not. */
void
CheckMetaImageData(const std::string & fileName, const MetaImageHeader & header, const ImageIOBase & io)
{
  auto                     fields = header.Fields;
  const unsigned long long headerBytes = header.Bytes;
  const std::string        dataName = fields["ElementDataFile"];
  std::string              dataFile = fileName;
  unsigned long long       offset = headerBytes;
  if (dataName != "LOCAL")
  {
    dataFile = SiblingFile(fileName, dataName);
    CheckPartFile(fileName, dataFile, "data file");
    offset = 0;
  }
  const long long    headerSize = fields.count("HeaderSize") ? std::atoll(fields["HeaderSize"].c_str()) : 0;
  unsigned long long byteCount = io.GetNumberOfComponents() * io.GetComponentSize();
  for (unsigned int d = 0; d < io.GetNumberOfDimensions(); ++d)
  {
    byteCount *= io.GetDimensions(d); // bounded: the sizes were checked against the voxel limit
  }
  const auto fileBytes = static_cast<unsigned long long>(itksys::SystemTools::FileLength(dataFile));
  if (IsTrue(fields, "CompressedData"))
  {
    offset += static_cast<unsigned long long>(std::max(headerSize, 0LL));
    std::string              error;
    const unsigned long long inflated = InflatedBytes(dataFile, offset, byteCount, error);
    if (inflated < byteCount)
    {
      itkGenericExceptionMacro(<< fileName << ": truncated or corrupt compressed voxels (the header describes "
                               << byteCount << " bytes, " << inflated << " could be read: " << error << ")");
    }
    return;
  }
  offset = headerSize == -1 ? 0 : offset + static_cast<unsigned long long>(std::max(headerSize, 0LL));
  if (fileBytes < offset || fileBytes - offset < byteCount)
  {
    itkGenericExceptionMacro(<< fileName << ": truncated file (the header describes " << byteCount
                             << " bytes of voxels, " << (dataFile == fileName ? "the file" : dataFile) << " holds "
                             << (fileBytes > offset ? fileBytes - offset : 0) << ")");
  }
}

/** NIfTI-1 (single file or pair) and Analyze 7.5: every field ITK's reader
 * trusts, then the stored voxels. */
void
CheckAnalyzeFamilyFile(const std::string & fileName, const std::string & extension, bool completenessOnly)
{
  const auto &      limits = KDBrainExtractionInputFile::GetLimits();
  const bool        single = extension == ".nii" || extension == ".nii.gz";
  const std::string stem = fileName.substr(0, fileName.size() - extension.size());
  std::string       headerFile = fileName;
  std::string       dataFile = fileName;
  if (!single)
  {
    headerFile = stem + ".hdr";
    dataFile.clear();
    for (const char * candidate : { ".img", ".img.gz" })
    {
      if (itksys::SystemTools::FileExists(stem + candidate, true))
      {
        dataFile = stem + candidate;
        break;
      }
    }
    CheckPartFile(fileName, headerFile, "header file");
    if (dataFile.empty())
    {
      itkGenericExceptionMacro(<< fileName << ": the data file " << stem << ".img of the header " << headerFile
                               << " is missing");
    }
    CheckPartFile(fileName, dataFile, "data file");
  }

  std::vector<char> bytes(352, 0);
  long long         count = 0;
  {
    GzipStream stream(headerFile);
    count = stream.Read(bytes.data(), bytes.size());
  }
  if (count < 348)
  {
    itkGenericExceptionMacro(<< fileName << ": " << (count < 0 ? "corrupt compressed file" : "truncated header")
                             << " (a NIfTI-1 header is 348 bytes)");
  }
  int32_t headerSize = 0;
  std::memcpy(&headerSize, bytes.data(), 4);
  bool swap = false;
  if (headerSize != 348)
  {
    std::reverse(reinterpret_cast<char *>(&headerSize), reinterpret_cast<char *>(&headerSize) + 4);
    swap = true;
  }
  const AnalyzeHeader header(bytes, swap);
  if (headerSize == 540 || header.Magic().compare(0, 3, "n+2") == 0 || header.Magic().compare(0, 3, "ni2") == 0)
  {
    itkGenericExceptionMacro(<< fileName
                             << ": a NIfTI-2 file; only NIfTI-1 is read here (convert it, e.g. with "
                                "nibabel or dcm2niix)");
  }
  if (headerSize != 348)
  {
    itkGenericExceptionMacro(<< fileName << ": not a NIfTI-1 or Analyze header (sizeof_hdr must be 348)");
  }
  const std::string magic = header.Magic();
  const bool        isNifti = magic == std::string("n+1\0", 4) || magic == std::string("ni1\0", 4);
  if (single && magic != std::string("n+1\0", 4))
  {
    itkGenericExceptionMacro(<< fileName << ": not a NIfTI-1 file (the magic string is not \"n+1\""
                             << (magic == std::string("ni1\0", 4) ? ", it is the .hdr/.img pair's \"ni1\"" : "")
                             << ")");
  }
  if (!single && magic == std::string("n+1\0", 4))
  {
    itkGenericExceptionMacro(<< fileName << ": a single-file NIfTI header (\"n+1\") in a .hdr/.img pair");
  }

  // Dimensions: dim[0] axes, each at least 1 voxel.
  const int dimensions = header.Short(40);
  if (dimensions < 1 || dimensions > 7)
  {
    itkGenericExceptionMacro(<< fileName << ": invalid number of dimensions in the header (dim[0] = " << dimensions
                             << "; must be 1 to 7)");
  }
  std::vector<long long> sizes;
  for (int d = 1; d <= dimensions; ++d)
  {
    sizes.push_back(header.Short(40 + 2 * d));
    if (sizes.back() < 1)
    {
      itkGenericExceptionMacro(<< fileName << ": invalid size " << FormatSize(sizes)
                               << " in the header (every axis needs at least 1 voxel)");
    }
  }
  // At most 7 axes of at most 32767 voxels: the products below fit in 64 bits
  // only when checked as they grow.
  unsigned long long spatialVoxels = 1;
  for (int d = 0; d < std::min(dimensions, 3); ++d)
  {
    spatialVoxels *= static_cast<unsigned long long>(sizes[d]);
  }
  if (!completenessOnly && spatialVoxels > limits.MaximumNumberOfVoxels)
  {
    itkGenericExceptionMacro(<< fileName << ": the header claims " << FormatSize(sizes) << " voxels, more than "
                             << limits.MaximumNumberOfVoxels << " (512^3), too many for a head volume");
  }
  unsigned long long allVoxels = spatialVoxels;
  for (int d = 3; d < dimensions; ++d)
  {
    allVoxels *= static_cast<unsigned long long>(sizes[d]);
    if (allVoxels > 64 * limits.MaximumNumberOfVoxels)
    {
      itkGenericExceptionMacro(<< fileName << ": the header claims " << FormatSize(sizes)
                               << " voxels, far too many for a head scan");
    }
  }

  // Voxel type.
  const int  datatype = header.Short(70);
  const int  bitpix = header.Short(72);
  const auto known = ScalarDataTypeBits().find(datatype);
  if (known == ScalarDataTypeBits().end())
  {
    const std::string name = NonScalarDataTypeName(datatype);
    itkGenericExceptionMacro(<< fileName << ": "
                             << (name.empty() ? "unknown voxel type (datatype " + std::to_string(datatype) + ")"
                                              : name + " voxels; a scalar image is needed"));
  }
  if (bitpix != known->second)
  {
    itkGenericExceptionMacro(<< fileName << ": the header's bitpix (" << bitpix << ") disagrees with its datatype ("
                             << datatype << ", " << known->second << " bits per voxel)");
  }

  // Spacing of the spatial axes (ITK takes pixdim as given, 0 as 1 mm).
  std::array<double, 3> spacing{ { 1.0, 1.0, 1.0 } };
  for (int d = 0; d < std::min(dimensions, 3); ++d)
  {
    spacing[d] = header.Float(80 + 4 * d);
  }
  if (!completenessOnly)
  {
    CheckSpacing(fileName, spacing, limits);
  }

  // Where the voxels start.
  const float offset = header.Float(108);
  const float minimumOffset = single ? 352.0f : 0.0f;
  if (!std::isfinite(offset) || offset < minimumOffset || offset != std::floor(offset) ||
      offset > static_cast<float>(limits.MaximumFileBytes))
  {
    itkGenericExceptionMacro(<< fileName << ": invalid vox_offset " << offset << " in the header (must be a whole "
                             << "number of bytes, at least " << minimumOffset << ")");
  }
  if (single && bytes[348] != 0)
  {
    // Header extensions between byte 352 and the voxels: each a size (a
    // multiple of 16, at least 16) and a code, all inside vox_offset.
    GzipStream        stream(fileName);
    std::vector<char> extensions(static_cast<std::size_t>(std::min(offset, 1.0e6f)));
    const long long   read = stream.Read(extensions.data(), extensions.size());
    std::size_t       at = 352;
    while (read > 0 && at + 8 <= static_cast<std::size_t>(read))
    {
      int32_t size = 0;
      std::memcpy(&size, extensions.data() + at, 4);
      if (swap)
      {
        std::reverse(reinterpret_cast<char *>(&size), reinterpret_cast<char *>(&size) + 4);
      }
      if (size < 16 || size % 16 != 0 || at + static_cast<std::size_t>(size) > static_cast<std::size_t>(offset))
      {
        itkGenericExceptionMacro(<< fileName << ": corrupt header extension (size " << size << " at byte " << at
                                 << ", voxels start at " << offset << ")");
      }
      at += static_cast<std::size_t>(size);
    }
  }

  // Intensity scaling (a slope of 0 means none).
  const float slope = header.Float(112);
  const float intercept = header.Float(116);
  if (!completenessOnly && slope != 0.0f && (!std::isfinite(slope) || !std::isfinite(intercept)))
  {
    itkGenericExceptionMacro(<< fileName << ": invalid intensity scaling in the header (scl_slope " << slope
                             << ", scl_inter " << intercept << ")");
  }

  if (isNifti && !completenessOnly)
  {
    // Orientation: ITK's reader aborts on a NaN in the sform and uses a
    // non-unit quaternion as if it were one.
    const int qformCode = header.Short(252);
    const int sformCode = header.Short(254);
    if (qformCode <= 0 && sformCode <= 0)
    {
      itkGenericExceptionMacro(<< fileName
                               << ": no orientation in the header (qform_code and sform_code are 0), so "
                                  "the head's axes are unknown; set the orientation first (e.g. "
                                  "fslorient or nibabel)");
    }
    if (qformCode > 0)
    {
      const double                b = header.Float(256);
      const double                c = header.Float(260);
      const double                d = header.Float(264);
      const std::array<double, 3> qoffset{ { header.Float(268), header.Float(272), header.Float(276) } };
      if (!std::isfinite(b) || !std::isfinite(c) || !std::isfinite(d) || b * b + c * c + d * d > 1.0 + 1e-4)
      {
        itkGenericExceptionMacro(<< fileName << ": invalid qform quaternion (b, c, d) = (" << b << ", " << c << ", "
                                 << d << "): not a rotation");
      }
      for (const double value : qoffset)
      {
        if (!(std::abs(value) <= limits.MaximumCoordinate))
        {
          itkGenericExceptionMacro(<< fileName << ": invalid qform offset (" << qoffset[0] << ", " << qoffset[1] << ", "
                                   << qoffset[2] << ") mm");
        }
      }
    }
    if (sformCode > 0)
    {
      double affine[3][4];
      for (int row = 0; row < 3; ++row)
      {
        for (int column = 0; column < 4; ++column)
        {
          affine[row][column] = header.Float(280 + 16 * row + 4 * column);
          if (!std::isfinite(affine[row][column]))
          {
            itkGenericExceptionMacro(<< fileName << ": the sform (srow_"
                                     << "xyz"[row] << ") holds NaN or infinity");
          }
        }
        if (!(std::abs(affine[row][3]) <= limits.MaximumCoordinate))
        {
          itkGenericExceptionMacro(<< fileName << ": invalid sform translation " << affine[row][3] << " mm");
        }
      }
      std::array<double, 3> norms;
      for (int column = 0; column < 3; ++column)
      {
        norms[column] = std::sqrt(affine[0][column] * affine[0][column] + affine[1][column] * affine[1][column] +
                                  affine[2][column] * affine[2][column]);
        if (!(norms[column] > 0.0))
        {
          itkGenericExceptionMacro(<< fileName << ": the sform is singular (axis " << column << " has no length)");
        }
      }
      for (int first = 0; first < 3; ++first)
      {
        for (int second = first + 1; second < 3; ++second)
        {
          const double cosine = (affine[0][first] * affine[0][second] + affine[1][first] * affine[1][second] +
                                 affine[2][first] * affine[2][second]) /
                                (norms[first] * norms[second]);
          if (std::abs(cosine) > 1e-2)
          {
            itkGenericExceptionMacro(<< fileName << ": the sform is sheared (axes " << first << " and " << second
                                     << " are not perpendicular); ITK needs an orthogonal voxel grid");
          }
        }
      }
    }
  }

  ScanStoredVoxels(fileName,
                   dataFile,
                   static_cast<unsigned long long>(offset),
                   allVoxels * static_cast<unsigned long long>(bitpix / 8),
                   bitpix / 8,
                   !completenessOnly && (datatype == 16 || datatype == 64),
                   swap);
}
} // namespace

const KDBrainExtractionInputFile::Limits &
KDBrainExtractionInputFile::GetLimits()
{
  static const Limits limits;
  return limits;
}

void
KDBrainExtractionInputFile::CheckFile(const std::string & fileName)
{
  itksys::SystemTools::Stat_t status;
  errno = 0;
  if (itksys::SystemTools::Stat(fileName, &status) != 0)
  {
    const int error = errno;
    switch (error)
    {
      case ENOENT:
        itkGenericExceptionMacro(<< fileName << ": no such file");
      case EACCES:
        itkGenericExceptionMacro(<< fileName << ": permission denied (a folder on its path cannot be searched)");
      case ELOOP:
        itkGenericExceptionMacro(<< fileName << ": a loop of symbolic links");
      case ENOTDIR:
        itkGenericExceptionMacro(<< fileName << ": no such file (a part of its path is not a folder)");
      default:
        itkGenericExceptionMacro(<< fileName << ": cannot access the file (" << std::strerror(error) << ")");
    }
  }
  if ((status.st_mode & S_IFMT) == S_IFDIR)
  {
    itkGenericExceptionMacro(<< fileName << ": a folder, not an image file");
  }
  if ((status.st_mode & S_IFMT) != S_IFREG)
  {
    itkGenericExceptionMacro(<< fileName << ": not a regular file (a FIFO, device or socket); only files are read");
  }
  if (status.st_size == 0)
  {
    itkGenericExceptionMacro(<< fileName << ": an empty file");
  }
  if (static_cast<unsigned long long>(status.st_size) > GetLimits().MaximumFileBytes)
  {
    itkGenericExceptionMacro(<< fileName << ": " << status.st_size << " bytes, more than "
                             << GetLimits().MaximumFileBytes << " (8 GiB)");
  }
  if (!itksys::SystemTools::TestFileAccess(fileName, itksys::TEST_FILE_READ))
  {
    itkGenericExceptionMacro(<< fileName << ": permission denied");
  }
}

std::string
KDBrainExtractionInputFile::ImageExtension(const std::string & fileName)
{
  const std::string name = itksys::SystemTools::GetFilenameName(fileName);
  for (const char * twoPart : { ".nii.gz", ".img.gz", ".nrrd.gz", ".mha.gz" })
  {
    if (name.size() > std::strlen(twoPart) && EndsWith(itksys::SystemTools::LowerCase(name), twoPart))
    {
      return name.substr(name.size() - std::strlen(twoPart));
    }
  }
  return itksys::SystemTools::GetFilenameLastExtension(name);
}

void
KDBrainExtractionInputFile::CheckImageFile(const std::string & fileName)
{
  CheckFile(fileName);
  const std::string extension = itksys::SystemTools::LowerCase(ImageExtension(fileName));
  if (extension == ".nii" || extension == ".nii.gz" || extension == ".hdr" || extension == ".img" ||
      extension == ".img.gz")
  {
    CheckAnalyzeFamilyFile(fileName, extension, false);
  }

  auto io = ImageIOFactory::CreateImageIO(fileName.c_str(), ImageIOFactory::IOFileModeEnum::ReadMode);
  if (io.IsNull())
  {
    if (extension == ".mgz" || extension == ".mgh")
    {
      itkGenericExceptionMacro(<< fileName
                               << ": FreeSurfer MGH/MGZ is not read by this build; convert it to NIfTI "
                                  "(mri_convert head.mgz head.nii.gz)");
    }
    if (extension == ".dcm" || extension == ".ima")
    {
      itkGenericExceptionMacro(<< fileName << ": DICOM slices are not read; convert the series to NIfTI (dcm2niix)");
    }
    itkGenericExceptionMacro(<< fileName << ": not an image in a format ITK can read");
  }
  // MetaIO prints its own complaints on stderr: its header is checked first.
  const bool      isMetaImage = extension == ".mha" || extension == ".mhd";
  MetaImageHeader metaImageHeader;
  if (isMetaImage)
  {
    metaImageHeader = ReadMetaImageHeader(fileName);
  }
  if (extension == ".nrrd" || extension == ".nhdr")
  {
    CheckNrrdDataFile(fileName);
  }
  io->SetFileName(fileName);
  try
  {
    io->ReadImageInformation();
  }
  catch (const ExceptionObject & error)
  {
    itkGenericExceptionMacro(<< fileName << ": unreadable image header (" << FirstLine(error) << ")");
  }
  std::vector<long long> sizes;
  for (unsigned int d = 0; d < io->GetNumberOfDimensions(); ++d)
  {
    sizes.push_back(static_cast<long long>(io->GetDimensions(d)));
  }
  unsigned int dimensions = io->GetNumberOfDimensions();
  // Trailing axes of size 1 (a 4D file holding one volume) are harmless.
  while (dimensions > 3 && io->GetDimensions(dimensions - 1) == 1)
  {
    --dimensions;
  }
  if (io->GetDimensions(0) < 8 || (dimensions > 1 && io->GetDimensions(1) < 8))
  {
    itkGenericExceptionMacro(<< fileName << ": " << FormatSize(sizes)
                             << " voxels, not a head volume (every axis needs at least 8 voxels)");
  }
  if (dimensions < 3 || (dimensions == 3 && io->GetDimensions(2) == 1))
  {
    itkGenericExceptionMacro(<< fileName << ": a 2D image; brain extraction needs a 3D volume");
  }
  if (dimensions > 4)
  {
    itkGenericExceptionMacro(<< fileName << ": a " << dimensions << "D image of " << FormatSize(sizes)
                             << " voxels; brain extraction needs one 3D volume");
  }
  if (dimensions == 4)
  {
    itkGenericExceptionMacro(<< fileName << ": a 4D image with " << io->GetDimensions(3)
                             << " volumes; extract one 3D volume first");
  }
  if (io->GetDimensions(2) < 8)
  {
    itkGenericExceptionMacro(<< fileName << ": " << FormatSize(sizes)
                             << " voxels, not a head volume (every axis needs at least 8 voxels)");
  }
  // Overflow-safe: each size is checked against the limit before multiplying.
  unsigned long long numberOfVoxels = 1;
  for (unsigned int d = 0; d < 3; ++d)
  {
    const unsigned long long size = io->GetDimensions(d);
    if (size > GetLimits().MaximumNumberOfVoxels || numberOfVoxels * size > GetLimits().MaximumNumberOfVoxels)
    {
      itkGenericExceptionMacro(<< fileName << ": the header claims " << FormatSize(sizes) << " voxels, more than "
                               << GetLimits().MaximumNumberOfVoxels << " (512^3), too many for a head volume");
    }
    numberOfVoxels *= size;
  }
  if (io->GetNumberOfComponents() != 1)
  {
    itkGenericExceptionMacro(<< fileName << ": " << io->GetNumberOfComponents()
                             << " components per voxel (vector or RGB); a scalar image is needed");
  }
  std::array<double, 3> spacing;
  for (unsigned int d = 0; d < 3; ++d)
  {
    spacing[d] = io->GetSpacing(d);
    if (!(std::abs(io->GetOrigin(d)) <= GetLimits().MaximumCoordinate))
    {
      itkGenericExceptionMacro(<< fileName << ": invalid origin coordinate " << io->GetOrigin(d) << " mm");
    }
  }
  CheckSpacing(fileName, spacing, GetLimits());
  for (unsigned int first = 0; first < 3; ++first)
  {
    const auto & a = io->GetDirection(first);
    for (unsigned int second = first; second < 3; ++second)
    {
      const auto & b = io->GetDirection(second);
      double       dot = 0.0;
      for (unsigned int k = 0; k < 3; ++k)
      {
        dot += a[k] * b[k];
      }
      if (!(std::abs(dot - (first == second ? 1.0 : 0.0)) < 1e-3))
      {
        itkGenericExceptionMacro(<< fileName << ": the direction cosines are not orthonormal (axes " << first << " and "
                                 << second << ")");
      }
    }
  }
  if (isMetaImage)
  {
    CheckMetaImageData(fileName, metaImageHeader, *io);
  }
}

void
KDBrainExtractionInputFile::CheckNiftiFileIsComplete(const std::string & fileName)
{
  CheckFile(fileName);
  CheckAnalyzeFamilyFile(fileName, itksys::SystemTools::LowerCase(ImageExtension(fileName)), true);
}

KDBrainExtractionInputFile::ImageType::Pointer
KDBrainExtractionInputFile::ReadImage(const std::string & fileName)
{
  CheckImageFile(fileName);
  auto reader = ImageFileReader<ImageType>::New();
  reader->SetFileName(fileName);
  try
  {
    reader->Update();
  }
  catch (const ExceptionObject & error)
  {
    itkGenericExceptionMacro(<< fileName << ": cannot read the voxels (truncated or corrupt file: " << FirstLine(error)
                             << ")");
  }
  // The header's intensity scaling can overflow float (scl_slope 1e38).
  ImageType::Pointer image = reader->GetOutput();
  const float *      voxels = image->GetBufferPointer();
  const std::size_t  numberOfVoxels = image->GetBufferedRegion().GetNumberOfPixels();
  const std::size_t  nonFinite =
    static_cast<std::size_t>(std::count_if(voxels, voxels + numberOfVoxels, [](float v) { return !std::isfinite(v); }));
  if (nonFinite > 0)
  {
    itkGenericExceptionMacro(<< fileName << ": " << nonFinite << " voxels are NaN or infinite (after the header's "
                             << "intensity scaling)");
  }
  return image;
}

std::string
KDBrainExtractionInputFile::DescribeError(const ExceptionObject & error)
{
  std::string message = error.GetDescription();
  message = message.substr(0, message.find('\n'));
  static const std::regex decorations(
    "(ITK ERROR: |itk::ERROR: )?[A-Za-z_][A-Za-z0-9_:]*\\(0x[0-9a-fA-F]+\\): |^ITK ERROR: ");
  return std::regex_replace(message, decorations, "");
}

KDBrainExtractionInputFile::ImageType::Pointer
KDBrainExtractionInputFile::ReadHeadImage(const std::string & fileName)
{
  ImageType::Pointer image = ReadImage(fileName);
  KDBrainExtractionPreprocessing::VerifyImage(image, fileName);
  return image;
}
} // end namespace itk
