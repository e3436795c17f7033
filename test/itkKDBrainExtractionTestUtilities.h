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
#ifndef itkKDBrainExtractionTestUtilities_h
#define itkKDBrainExtractionTestUtilities_h

#include "itkImage.h"
#include "itkKDBrainExtractionTorchModel.h"

#include <array>
#include <cmath>
#include <functional>

namespace itk
{
namespace KDBrainExtractionTesting
{
using ImageType = Image<float, 3>;

/** An image of \a size with the given geometry, each voxel set to
 * \a value(physical point of the voxel centre). */
inline ImageType::Pointer
MakeImage(const ImageType::SizeType & size, const ImageType::SpacingType & spacing, const ImageType::PointType & origin,
          const ImageType::DirectionType & direction, const std::function<float(const ImageType::PointType &)> & value)
{
  auto image = ImageType::New();
  image->SetRegions(size);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  ImageType::IndexType index;
  for (index[2] = 0; index[2] < static_cast<IndexValueType>(size[2]); ++index[2])
  {
    for (index[1] = 0; index[1] < static_cast<IndexValueType>(size[1]); ++index[1])
    {
      for (index[0] = 0; index[0] < static_cast<IndexValueType>(size[0]); ++index[0])
      {
        ImageType::PointType point;
        image->TransformIndexToPhysicalPoint(index, point);
        image->SetPixel(index, value(point));
      }
    }
  }
  return image;
}

/** An oblique direction (rotations about z then x) for geometry tests. */
inline ImageType::DirectionType
MakeObliqueDirection(double degreesZ, double degreesX)
{
  const double             a = degreesZ * 3.14159265358979323846 / 180.0;
  const double             b = degreesX * 3.14159265358979323846 / 180.0;
  ImageType::DirectionType rz;
  rz.SetIdentity();
  rz(0, 0) = std::cos(a);
  rz(0, 1) = -std::sin(a);
  rz(1, 0) = std::sin(a);
  rz(1, 1) = std::cos(a);
  ImageType::DirectionType rx;
  rx.SetIdentity();
  rx(1, 1) = std::cos(b);
  rx(1, 2) = -std::sin(b);
  rx(2, 1) = std::sin(b);
  rx(2, 2) = std::cos(b);
  return rz * rx;
}

/** The same voxels with axes permuted (new axis k is old axis order[k]) and
 * flipped where \a flip says, and the geometry that keeps every voxel at its
 * physical position. \a sourceIndex maps a new index to the old one. */
inline ImageType::Pointer
MakeReorientedCopy(const ImageType * image, const std::array<unsigned int, 3> & order, const std::array<bool, 3> & flip,
                   std::function<ImageType::IndexType(const ImageType::IndexType &)> & sourceIndex)
{
  const auto               size = image->GetLargestPossibleRegion().GetSize();
  ImageType::SizeType      newSize;
  ImageType::SpacingType   newSpacing;
  ImageType::DirectionType newDirection;
  ImageType::IndexType     cornerIndex;
  for (unsigned int k = 0; k < 3; ++k)
  {
    newSize[k] = size[order[k]];
    newSpacing[k] = image->GetSpacing()[order[k]];
    cornerIndex[order[k]] = flip[k] ? static_cast<IndexValueType>(size[order[k]] - 1) : 0;
    for (unsigned int r = 0; r < 3; ++r)
    {
      newDirection(r, k) = (flip[k] ? -1.0 : 1.0) * image->GetDirection()(r, order[k]);
    }
  }
  ImageType::PointType newOrigin;
  image->TransformIndexToPhysicalPoint(cornerIndex, newOrigin);
  sourceIndex = [order, flip, size](const ImageType::IndexType & index) {
    ImageType::IndexType source;
    for (unsigned int k = 0; k < 3; ++k)
    {
      source[order[k]] = flip[k] ? static_cast<IndexValueType>(size[order[k]]) - 1 - index[k] : index[k];
    }
    return source;
  };
  auto copy = ImageType::New();
  copy->SetRegions(newSize);
  copy->SetSpacing(newSpacing);
  copy->SetOrigin(newOrigin);
  copy->SetDirection(newDirection);
  copy->Allocate();
  ImageType::IndexType index;
  for (index[2] = 0; index[2] < static_cast<IndexValueType>(newSize[2]); ++index[2])
  {
    for (index[1] = 0; index[1] < static_cast<IndexValueType>(newSize[1]); ++index[1])
    {
      for (index[0] = 0; index[0] < static_cast<IndexValueType>(newSize[0]); ++index[0])
      {
        copy->SetPixel(index, image->GetPixel(sourceIndex(index)));
      }
    }
  }
  return copy;
}

/** A synthetic head: a bright ellipsoidal "brain" inside a darker "scalp"
 * shell, centred at \a centre (mm). */
inline float
SyntheticHead(const ImageType::PointType & point, const ImageType::PointType & centre)
{
  const double x = (point[0] - centre[0]) / 30.0;
  const double y = (point[1] - centre[1]) / 38.0;
  const double z = (point[2] - centre[2]) / 28.0;
  const double r = std::sqrt(x * x + y * y + z * z);
  return r < 0.8 ? 100.0f + 10.0f * static_cast<float>(x) : (r < 1.0 ? 40.0f : 0.0f);
}

/** A small student or teacher with random weights, for fast tests. */
inline KDBrainExtractionTorchModel::Pointer
MakeTinyModel(KDBrainExtractionTorchModel::RoleEnum role, unsigned int seed = 7)
{
  auto                                      model = KDBrainExtractionTorchModel::New();
  KDBrainExtractionTorchModel::Architecture architecture;
  architecture.Depth = 2;
  architecture.BaseWidth = 4;
  architecture.Normalization = "none";
  KDBrainExtractionTorchModel::Contract contract;
  contract.WorkingSpacing = { { 4.0, 4.0, 4.0 } };
  model->Initialize(role, architecture, contract, seed);
  model->SetDevice("cpu");
  return model;
}
} // namespace KDBrainExtractionTesting
} // namespace itk

#endif // itkKDBrainExtractionTestUtilities_h
