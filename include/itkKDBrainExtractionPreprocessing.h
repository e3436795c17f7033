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
#ifndef itkKDBrainExtractionPreprocessing_h
#define itkKDBrainExtractionPreprocessing_h

#include "KDBrainExtractionExport.h"
#include "itkImage.h"

#include <array>
#include <string>

namespace itk
{
/** \class KDBrainExtractionPreprocessing
 * \brief The one mapping between a head volume and the networks' working grid.
 *
 * Training and inference both call these functions, so that what the network
 * sees at inference is exactly what it was trained on. The working grid is
 * axis-aligned in physical (LPS) space, at the model's working spacing, and
 * covers the physical extent of the input; it is therefore the same grid for
 * any orientation, axis order or voxel size of the same head.
 *
 * Intensities are mapped robustly to [0, 1] by two percentiles.
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtraction_EXPORT KDBrainExtractionPreprocessing
{
public:
  using ImageType = Image<float, 3>;
  using MaskImageType = Image<unsigned char, 3>;
  using GridType = ImageBase<3>;

  /** What a model expects of its input; stored in every model file. */
  struct Contract
  {
    std::array<double, 3> WorkingSpacing{ { 2.0, 2.0, 2.0 } };
    /** Every working-grid size is a multiple of this (2^depth of the network). */
    unsigned int SizeMultiple{ 8 };
    double       LowerPercentile{ 0.5 };
    double       UpperPercentile{ 99.5 };
    /** Upper bound of working-grid voxels, to refuse absurd inputs early. */
    std::size_t MaximumNumberOfVoxels{ 256u * 256u * 256u };
  };

  /** The linear map that takes input intensities to [0, 1]. */
  struct IntensityWindow
  {
    double Lower{ 0.0 };
    double Upper{ 1.0 };
  };

  /** Throws an ExceptionObject naming \a description and the problem if
   * \a image is unusable: empty, too small, zero or negative spacing,
   * a singular direction, NaN or infinite voxels, or constant intensity. */
  static void
  VerifyImage(const ImageType * image, const std::string & description);

  /** The working grid for \a input (geometry only, not allocated). */
  static ImageType::Pointer
  MakeWorkingGrid(const GridType * input, const Contract & contract);

  /** Linear resampling of \a input onto its working grid (zero outside), with
   * no anti-aliasing: the shipped models are trained on unblurred data. */
  static ImageType::Pointer
  ResampleToWorkingGrid(const ImageType * input, const Contract & contract);

  /** Resampling of a mask onto \a workingGrid: linear, then thresholded at 0.5,
   * so that partial-volume voxels are decided by their physical overlap. */
  static MaskImageType::Pointer
  ResampleMaskToGrid(const MaskImageType * mask, const GridType * workingGrid);

  /** Linear resampling of \a image onto the grid of \a reference. */
  static ImageType::Pointer
  ResampleToReferenceGrid(const ImageType * image, const GridType * reference, float defaultValue = 0.0f);

  /** The window between two percentiles of the voxels of \a image. */
  static IntensityWindow
  ComputeIntensityWindow(const ImageType * image, const Contract & contract);

  /** In place: (v - lower) / (upper - lower), clipped to [0, 1]. */
  static void
  NormalizeIntensities(ImageType * image, const IntensityWindow & window);

  /** The whole input side of the network: resample, then normalise.
   * \a window receives the map used, to bring outputs back to input units. */
  static ImageType::Pointer
  PrepareWorkingVolume(const ImageType * input, const Contract & contract, IntensityWindow & window);

  /** Threshold a probability map, keep the largest connected component
   * (face connectivity) and fill its holes; then move the mask's border by
   * \a border millimetres (MoveMaskBorder), and after an erosion keep the
   * largest component again when asked to. */
  static MaskImageType::Pointer
  MakeBrainMask(const ImageType * probability, double threshold, bool keepLargestComponent, bool fillHoles,
                double border = 0.0);

  /** In place, on a 0/1 mask: a positive \a millimetres adds every voxel
   * whose centre lies within that distance of a mask voxel's centre (dilation
   * by a ball, in physical units, so anisotropic grids grow alike in every
   * direction); a negative one removes every mask voxel within that distance
   * of a voxel outside the mask (erosion); 0 changes nothing. Exact Euclidean
   * distances (Maurer's distance map), on the mask's box only. */
  static void
  MoveMaskBorder(MaskImageType * mask, double millimetres);
};
} // end namespace itk

#endif // itkKDBrainExtractionPreprocessing_h
