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
#ifndef itkKDBrainExtractionOutputFile_h
#define itkKDBrainExtractionOutputFile_h

#include "KDBrainExtractionExport.h"
#include "itkMacro.h"

#include <string>

namespace itk
{
/** \class KDBrainExtractionOutputFile
 * \brief Writes an output so that its final name never holds a partial file.
 *
 * The image is written under a temporary name unique to the process and the
 * call (same folder, same extension, so the format and a later rename stay on
 * one file system), read back (NIfTI: header and every stored byte, a gzip
 * stream to its trailer; other formats: every voxel compared), and only then
 * renamed. ITK's NIfTI and MetaImage writers report a full disk on stderr and
 * return normally; this turns that into an ExceptionObject naming the file.
 * Two-file formats (.hdr/.img, .mhd/.raw, .nhdr/.raw) are refused: their data
 * file cannot be renamed together with the header.
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtraction_EXPORT KDBrainExtractionOutputFile
{
public:
  /** Writes \a image to \a fileName (compressed where the format can). */
  template <typename TImage>
  static void
  WriteImage(const TImage * image, const std::string & fileName);

  /** Writes \a bytes to \a fileName the same way; \a what names the file's
   * role in errors ("the summary"). */
  static void
  WriteBytes(const std::string & bytes, const std::string & fileName, const std::string & what);

  /** The first half of WriteImage: writes and verifies \a image under a
   * temporary name, which it returns, for MoveIntoPlace once every output of
   * a run is ready (so that a failure part-way leaves none of them). */
  template <typename TImage>
  static std::string
  StageImage(const TImage * image, const std::string & fileName);

  /** The first half of WriteBytes, as StageImage. */
  static std::string
  StageBytes(const std::string & bytes, const std::string & fileName, const std::string & what);

  /** Throws unless \a fileName can be an output: in an existing, writable
   * folder and, for an image, a single-file format ITK can write. Lets a
   * program fail before its work rather than after. */
  static void
  CheckOutputName(const std::string & fileName, bool isImage = true);

  /** A name in the folder of \a fileName, hidden, unique to this process and
   * call, with the same extension. */
  static std::string
  TemporaryName(const std::string & fileName);

  /** Renames \a temporary to \a fileName; on failure removes \a temporary
   * and throws. */
  static void
  MoveIntoPlace(const std::string & temporary, const std::string & fileName);

  /** Removes a staged file that will not be moved into place. */
  static void
  Discard(const std::string & temporary);

  /** Removes the temporary files that process \a processId staged for
   * \a fileName (their names are TemporaryName's): what a process that was
   * killed part-way, and so could not clean up, left beside the output. */
  static void
  RemoveTemporariesOf(const std::string & fileName, long long processId);


  /** Removes every file staged and not yet moved into place or removed.
   * Async-signal-safe (unlink only), for an application's SIGINT/SIGTERM
   * handler: an interrupted run leaves no temporary files behind. */
  static void
  RemoveStagedFiles();

  /** Throws unless \a fileName holds all of \a image. */
  template <typename TImage>
  static void
  VerifyWrittenImage(const TImage * image, const std::string & fileName);

private:
  static void
  Register(const std::string & temporary);
  static void
  Unregister(const std::string & temporary);
};
} // end namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkKDBrainExtractionOutputFile.hxx"
#endif

#endif // itkKDBrainExtractionOutputFile_h
