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
#ifndef itkKDBrainExtractionBoundaryRefinement_h
#define itkKDBrainExtractionBoundaryRefinement_h

#include "KDBrainExtractionExport.h"
#include "itkKDBrainExtractionPreprocessing.h"

#include <cstddef>
#include <vector>

namespace itk
{
class KDBrainExtractionTorchModel;

/** \class KDBrainExtractionBoundaryRefinement
 * \brief The data side of the second, fine stage: the brain's boundary
 * re-decided at the input's resolution, point by point, in a thin band
 * around the coarse (working-grid) boundary.
 *
 * The coarse student decides the mask on a 2 mm grid; mapped back onto a 1 mm
 * input, even a perfect 2 mm prediction loses about 0.011 Dice at the brain's
 * surface. The fine stage, as PointRend (Kirillov et al., CVPR 2020) does
 * for 2D segmentation, re-decides only the voxels near the coarse boundary:
 * on a fine grid (axis-aligned in LPS, at the refiner's working spacing, over
 * the coarse mask's box) each voxel of the band from BandDepthInside mm inside
 * the coarse surface to BandDepthOutside mm outside it gets a feature vector
 * (the input around it at the fine spacing and at two wider steps, the coarse
 * probability around it, its signed distance to the coarse surface), which a
 * small network (a refiner model) turns into a probability. Everything else
 * keeps the coarse probability.
 *
 * Training (KDBrainExtractionTrainer::TrainBoundaryRefiner) and inference
 * (Refine, which KDStudentMaskFilter runs) both build their features here.
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtraction_EXPORT KDBrainExtractionBoundaryRefinement
{
public:
  using ImageType = KDBrainExtractionPreprocessing::ImageType;
  using MaskImageType = KDBrainExtractionPreprocessing::MaskImageType;
  using GridType = KDBrainExtractionPreprocessing::GridType;
  using IntensityWindow = KDBrainExtractionPreprocessing::IntensityWindow;

  /** The band re-decided, in mm from the coarse surface. Asymmetric, because
   * the shipped student's errors on painted heads of unseen subjects are
   * almost all brain taken in too much (the CSF layer over the brain, and
   * more at the skull base): on a head painted from a training map at 1 mm,
   * 81 % (T1w) and 64 % (T2w) of its wrong voxels lay within 4 mm of its
   * surface, 95 % and 92 % within 8 mm. */
  static constexpr double BandDepthInside = 8.0;
  static constexpr double BandDepthOutside = 4.0;

  /** Per point: the normalised input on a 5x5x5 neighbourhood at the fine
   * spacing (125) and on 3x3x3 ones at three and six times it (27 + 27), the
   * coarse probability on a 3x3x3 neighbourhood at twice it (27), and the
   * signed distance to the coarse surface divided by BandDepthInside (1). */
  static constexpr unsigned int NumberOfFeatures = 125 + 27 + 27 + 27 + 1;

  /** The fine stage is for inputs finer than the coarse working grid: some
   * axis's spacing below 3/4 of the coarse working spacing along it (a 2 mm
   * input, or one of 1.6 mm, gains nothing from it). */
  static bool
  IsFinerThanWorkingGrid(const GridType * input, const KDBrainExtractionPreprocessing::Contract & coarseContract);

  /** What the features are gathered from, on the fine grid. */
  struct FineVolumes
  {
    /** The input resampled linearly onto the fine grid and normalised by the
     * coarse stage's intensity window. */
    ImageType::Pointer Intensity;
    /** The coarse probability resampled linearly onto the fine grid. */
    ImageType::Pointer CoarseProbability;
    /** Signed distance (mm) to the surface of the coarse mask (probability
     * >= 0.5), negative inside, resampled linearly onto the fine grid. */
    ImageType::Pointer CoarseDistance;
    /** Buffer offsets of the fine voxels of the band, in buffer order. */
    std::vector<std::size_t> BandOffsets;
  };

  /** The fine volumes for \a image, whose coarse probability on its working
   * grid is \a coarseProbability and whose intensity window is \a window.
   * The fine grid has spacing \a fineSpacing (mm), identity direction, and
   * covers the box of the coarse mask with room for the band and the
   * features; its voxel centres fall on the input's where the input is
   * axis-aligned at that spacing, so that a 1 mm input is not
   * interpolated. Throws if the coarse mask is empty: there is no boundary. */
  static FineVolumes
  PrepareFineVolumes(const ImageType * image, const IntensityWindow & window, const ImageType * coarseProbability,
                     double fineSpacing);

  /** Writes the NumberOfFeatures features of each of \a count band voxels
   * (buffer offsets into the fine grid, from BandOffsets) to \a features, one
   * point after another. */
  static void
  GatherFeatures(const FineVolumes & volumes, const std::size_t * offsets, std::size_t count, float * features);

  /** The fine stage on \a image: the probability \a coarseProbability of its
   * working grid, re-decided near its boundary by \a refiner, a refiner
   * model made for \a student (throws otherwise). The result is on the fine
   * grid, the coarse probability resampled there away from the band; with no
   * brain in \a coarseProbability (no boundary), it is \a coarseProbability. */
  static ImageType::Pointer
  Refine(const ImageType * image, const IntensityWindow & window, ImageType * coarseProbability,
         const KDBrainExtractionTorchModel & student, const KDBrainExtractionTorchModel & refiner);
};
} // end namespace itk

#endif // itkKDBrainExtractionBoundaryRefinement_h
