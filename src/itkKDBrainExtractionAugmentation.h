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
#ifndef itkKDBrainExtractionAugmentation_h
#define itkKDBrainExtractionAugmentation_h

// Private to the training library: includes LibTorch. The trainer's
// augmentations of anatomy and field of view, on working-grid volumes;
// declared here so that unit tests can check what each one does, which a
// trained model's weights cannot show. Random numbers come from the sample's
// generator, so that samples stay functions of the seed.
#include "itkImage.h"
#include "KDBrainExtractionTrainingExport.h"

#include <array>
#include <random>
#include <torch/torch.h>

namespace itk
{
/** Ages a copy of a tissue class map (HeadTissueEnums codes, working grid)
 * and, in place, its [1, z, y, x] brain mask: grey matter touching the CSF
 * around the brain becomes that CSF and leaves the mask, grey matter touching
 * sulcal CSF and white matter touching the ventricles become brain CSF, each
 * voxel with a probability drawn in [0.2, 0.8], once or twice (2 or 4 mm on
 * the 2 mm grid). */
KDBrainExtractionTraining_EXPORT Image<unsigned char, 3>::Pointer
KDBrainExtractionSimulateAtrophy(const Image<unsigned char, 3> * classes, torch::Tensor & mask,
                                 std::mt19937_64 & generator);

/** Cuts the field of view of a [1, z, y, x] image and mask (LPS working
 * grid: z runs inferior to superior, y anterior to posterior) by a plane
 * across z (60 %) or y, from 8 voxels outside the brain's extreme (\a
 * brainLow or \a brainHigh, inclusive) on one side to 12 voxels into it;
 * image and mask are zero beyond it. */
KDBrainExtractionTraining_EXPORT void
KDBrainExtractionCropFieldOfView(const std::array<int64_t, 3> & brainLow, const std::array<int64_t, 3> & brainHigh,
                                 torch::Tensor & image, torch::Tensor & mask, std::mt19937_64 & generator);

/** A random smooth deformation of a [1, 1, z, y, x] image and its mask:
 * displacements drawn uniformly up to \a maximumVoxels on a 5x5x5 control
 * grid, interpolated over the volume; the mask stays binary. */
KDBrainExtractionTraining_EXPORT void
KDBrainExtractionDeformNonlinearly(torch::Tensor & image, torch::Tensor & mask, double maximumVoxels,
                                   std::mt19937_64 & generator);
} // end namespace itk

#endif // itkKDBrainExtractionAugmentation_h
