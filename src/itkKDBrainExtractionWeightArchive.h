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
#ifndef itkKDBrainExtractionWeightArchive_h
#define itkKDBrainExtractionWeightArchive_h

// Private to the module library.
#include <string>

namespace itk
{
/** Checks a model file's weight archive (LibTorch's zip of data.pkl and one
 * record per storage) before LibTorch reads it: every storage the pickle
 * declares must have a record of at least its declared bytes. LibTorch sizes
 * each storage by the pickle's element count and not by the record it reads,
 * so a short or empty record (a crafted file, or a writer that failed
 * part-way, with a valid checksum) would be read past its end. The pickle is
 * walked opcode by opcode; a form LibTorch's own writer does not produce is
 * refused. Throws std::runtime_error with a one-line reason. */
void
CheckWeightArchive(const std::string & payload);
} // namespace itk

#endif // itkKDBrainExtractionWeightArchive_h
