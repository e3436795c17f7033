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
#ifndef kdbetQualityControl_h
#define kdbetQualityControl_h

#include "kdbetCommon.h"

namespace kdbet
{
/** Stages (KDBrainExtractionOutputFile::StageBytes; returns the temporary
 * name, for MoveIntoPlace) a PNG for checking a result at a glance: axial, coronal and
 * sagittal slices through the centre of the brain, side by side, the head in
 * grey (0.5-99.5 percentile window) and the outline of \a mask in red.
 * Slices are cut from an axis-aligned (LPS) isotropic resampling of the
 * head, so the picture has the same orientation and proportions whatever the
 * scan's axis order and voxel size: radiological convention (the patient's
 * right on the left of the axial and coronal views), anterior on the left
 * of the sagittal view, superior at the top. */
std::string
StageQualityControlPicture(const ImageType * head, const MaskImageType * mask, const std::string & fileName);
} // namespace kdbet

#endif // kdbetQualityControl_h
