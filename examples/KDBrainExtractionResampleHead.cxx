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

// Resamples a head volume onto another grid (spacing, and optionally permuted
// and flipped axes), to check brain extraction on grids the model never saw.
// Usage: KDBrainExtractionResampleHead IN OUT SX SY SZ [ORDER FLIPS] [linear|nearest]
//   ORDER: a permutation of 012 (new axis k is old axis ORDER[k]); FLIPS: three 0/1.

#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkLinearInterpolateImageFunction.h"
#include "itkNearestNeighborInterpolateImageFunction.h"
#include "itkResampleImageFilter.h"

#include <cmath>
#include <iostream>
#include <string>

int
main(int argc, char * argv[])
{
  if (argc < 6)
  {
    std::cerr << "Usage: " << argv[0] << " IN OUT SX SY SZ [ORDER FLIPS] [linear|nearest]\n";
    return 2;
  }
  using ImageType = itk::Image<float, 3>;
  try
  {
    const auto        input = itk::ReadImage<ImageType>(argv[1]);
    const std::string order = argc > 7 ? argv[6] : "012";
    const std::string flips = argc > 7 ? argv[7] : "000";
    const bool        nearest = argc > 8 && std::string(argv[8]) == "nearest";
    if (order.size() != 3 || flips.size() != 3)
    {
      std::cerr << "ORDER and FLIPS take three digits each\n";
      return 2;
    }

    // The new grid covers the same physical box with the new axes.
    const auto               inputSize = input->GetLargestPossibleRegion().GetSize();
    ImageType::SpacingType   spacing;
    ImageType::SizeType      size;
    ImageType::DirectionType direction;
    ImageType::IndexType     cornerIndex;
    for (unsigned int k = 0; k < 3; ++k)
    {
      const unsigned int old = order[k] - '0';
      const bool         flip = flips[k] == '1';
      spacing[k] = std::stod(argv[3 + k]);
      const double extent = inputSize[old] * input->GetSpacing()[old];
      size[k] = static_cast<itk::SizeValueType>(std::round(extent / spacing[k]));
      for (unsigned int r = 0; r < 3; ++r)
      {
        direction(r, k) = (flip ? -1.0 : 1.0) * input->GetDirection()(r, old);
      }
      cornerIndex[old] = flip ? static_cast<itk::IndexValueType>(inputSize[old] - 1) : 0;
    }
    // The first voxel centre sits half a new voxel inside the old box edge.
    itk::ContinuousIndex<double, 3> edge;
    for (unsigned int d = 0; d < 3; ++d)
    {
      edge[d] = cornerIndex[d] + (cornerIndex[d] == 0 ? -0.5 : 0.5);
    }
    ImageType::PointType corner;
    input->TransformContinuousIndexToPhysicalPoint(edge, corner);
    ImageType::PointType origin;
    for (unsigned int r = 0; r < 3; ++r)
    {
      origin[r] = corner[r];
      for (unsigned int k = 0; k < 3; ++k)
      {
        origin[r] += direction(r, k) * 0.5 * spacing[k];
      }
    }

    auto resample = itk::ResampleImageFilter<ImageType, ImageType>::New();
    resample->SetInput(input);
    if (nearest)
    {
      resample->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<ImageType>::New());
    }
    else
    {
      resample->SetInterpolator(itk::LinearInterpolateImageFunction<ImageType>::New());
    }
    resample->SetSize(size);
    resample->SetOutputSpacing(spacing);
    resample->SetOutputOrigin(origin);
    resample->SetOutputDirection(direction);
    resample->Update();
    itk::WriteImage(resample->GetOutput(), argv[2], true);
    std::cout << argv[2] << ": " << size << " voxels of " << spacing << " mm" << std::endl;
  }
  catch (const itk::ExceptionObject & error)
  {
    std::cerr << "error: " << error.GetDescription() << std::endl;
    return 1;
  }
  return 0;
}
