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
#ifndef itkKDBrainExtractionInputFile_h
#define itkKDBrainExtractionInputFile_h

#include "KDBrainExtractionExport.h"
#include "itkKDBrainExtractionPreprocessing.h"

#include <cstdint>
#include <string>

namespace itk
{
/** \class KDBrainExtractionInputFile
 * \brief Reads a head image file after checking it as an untrusted input.
 *
 * ITK's readers trust their headers: a NaN in a NIfTI sform aborts inside
 * VNL, a huge pixdim or a vox_offset inside the header is used as given, a
 * file shorter than its header says reads as zeros, and a FIFO blocks
 * forever. Every file kdbet, the Python module and the training data readers
 * open goes through here first: the file itself (a regular, readable,
 * non-empty file of bounded size), then its header field by field, with
 * overflow-safe sizes, before anything is allocated, then (NIfTI and Analyze)
 * the stored voxels for truncation and NaN. Every refusal is an
 * ExceptionObject whose description is one line that starts with the file
 * name.
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtraction_EXPORT KDBrainExtractionInputFile
{
public:
  using ImageType = KDBrainExtractionPreprocessing::ImageType;

  /** Bounds of what is taken for a head scan. Voxels: 512^3 covers a
   * 0.5 mm whole head; preprocessing needs about 20 bytes per input voxel. */
  struct Limits
  {
    std::uint64_t MaximumNumberOfVoxels{ 512ull * 512ull * 512ull };
    std::uint64_t MaximumFileBytes{ 8ull << 30 };
    double        MinimumSpacing{ 0.01 };
    double        MaximumSpacing{ 100.0 };
    /** Largest origin or affine translation, mm (100 m). */
    double MaximumCoordinate{ 1e5 };
  };

  /** The shared limits (also those of VerifyImage for in-memory images). */
  static const Limits &
  GetLimits();

  /** Throws unless \a fileName is a regular, readable, non-empty file within
   * the size limit: a missing file, a folder, a FIFO or device, permission
   * denied and a symbolic link loop each get their own message. */
  static void
  CheckFile(const std::string & fileName);

  /** CheckFile, then the header (and, for NIfTI and Analyze, the stored
   * voxels) without reading the image through ITK. */
  static void
  CheckImageFile(const std::string & fileName);

  /** Throws unless the NIfTI file (.nii, .nii.gz) holds every byte its
   * header describes, a gzip stream up to its trailer: the check of a file
   * just written, whatever its contents. */
  static void
  CheckNiftiFileIsComplete(const std::string & fileName);

  /** CheckImageFile, then reads the scalar 3D image as float (a mask or a
   * probability map as well as a head). */
  static ImageType::Pointer
  ReadImage(const std::string & fileName);

  /** ReadImage, then verifies that the image can be a head scan
   * (KDBrainExtractionPreprocessing::VerifyImage: not constant, ...). */
  static ImageType::Pointer
  ReadHeadImage(const std::string & fileName);

  /** The extension of an image file name, double ones (.nii.gz) included. */
  static std::string
  ImageExtension(const std::string & fileName);

  /** An ITK exception as one line for a user: the description's first line
   * without ITK's "ITK ERROR: " and "itk::ERROR: NrrdImageIO(0x55d4...): "
   * decorations (object addresses say nothing to a user). */
  static std::string
  DescribeError(const ExceptionObject & error);
};
} // end namespace itk

#endif // itkKDBrainExtractionInputFile_h
