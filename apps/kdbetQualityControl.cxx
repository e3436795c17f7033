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
#include "kdbetQualityControl.h"

#include "itkRGBPixel.h"

#include "itk_zlib.h"

#include <algorithm>
#include <cmath>

namespace kdbet
{
namespace
{
using PictureType = itk::Image<itk::RGBPixel<unsigned char>, 2>;

/** A 2D slice of a display volume: grey values and inside-the-brain flags. */
struct Slice
{
  unsigned int               Width{ 0 };
  unsigned int               Height{ 0 };
  std::vector<unsigned char> Grey;
  std::vector<bool>          Brain;
};

/** The slice through a volume (x fastest) at \a fixedIndex on \a fixedAxis;
 * \a columnAxis runs left to right, \a rowAxis top to bottom, reversed if
 * \a flipRows (z runs inferior to superior: superior goes on top). */
Slice
CutSlice(const ImageType * grey, const ImageType * brain,
         const itk::KDBrainExtractionPreprocessing::IntensityWindow & window, unsigned int fixedAxis,
         itk::IndexValueType fixedIndex, unsigned int columnAxis, unsigned int rowAxis, bool flipRows)
{
  const auto size = grey->GetLargestPossibleRegion().GetSize();
  Slice      slice;
  slice.Width = static_cast<unsigned int>(size[columnAxis]);
  slice.Height = static_cast<unsigned int>(size[rowAxis]);
  slice.Grey.resize(static_cast<std::size_t>(slice.Width) * slice.Height);
  slice.Brain.resize(slice.Grey.size());
  const double range = std::max(window.Upper - window.Lower, 1e-12);
  for (unsigned int row = 0; row < slice.Height; ++row)
  {
    for (unsigned int column = 0; column < slice.Width; ++column)
    {
      ImageType::IndexType index;
      index[fixedAxis] = fixedIndex;
      index[columnAxis] = column;
      index[rowAxis] = flipRows ? slice.Height - 1 - row : row;
      const double value = (grey->GetPixel(index) - window.Lower) / range;
      const auto   at = static_cast<std::size_t>(row) * slice.Width + column;
      slice.Grey[at] = static_cast<unsigned char>(std::lround(255.0 * std::clamp(value, 0.0, 1.0)));
      slice.Brain[at] = brain->GetPixel(index) >= 0.5f;
    }
  }
  return slice;
}

/** An 8-bit RGB PNG in memory. ITK's PNG writer corrupts the heap when the
 * disk fills up (libpng's error jump), so the picture is encoded here and
 * written as checked bytes. */
std::string
EncodePng(const PictureType * picture)
{
  const auto         size = picture->GetLargestPossibleRegion().GetSize();
  const auto         width = static_cast<uint32_t>(size[0]);
  const auto         height = static_cast<uint32_t>(size[1]);
  std::vector<Bytef> rows;
  rows.reserve(static_cast<std::size_t>(height) * (3 * width + 1));
  const auto * pixels = picture->GetBufferPointer();
  for (uint32_t y = 0; y < height; ++y)
  {
    rows.push_back(0); // filter type: none
    for (uint32_t x = 0; x < width; ++x)
    {
      const auto & pixel = pixels[static_cast<std::size_t>(y) * width + x];
      rows.insert(rows.end(), { pixel.GetRed(), pixel.GetGreen(), pixel.GetBlue() });
    }
  }
  uLongf             compressedSize = compressBound(static_cast<uLong>(rows.size()));
  std::vector<Bytef> compressed(compressedSize);
  if (compress2(compressed.data(), &compressedSize, rows.data(), static_cast<uLong>(rows.size()), 6) != Z_OK)
  {
    itkGenericExceptionMacro(<< "cannot compress the QC picture");
  }
  std::string png("\x89PNG\r\n\x1a\n", 8);
  auto        appendBigEndian = [](std::string & bytes, uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8)
    {
      bytes.push_back(static_cast<char>((value >> shift) & 0xff));
    }
  };
  auto appendChunk = [&png, &appendBigEndian](const char * type, const std::string & data) {
    appendBigEndian(png, static_cast<uint32_t>(data.size()));
    const std::string typed = std::string(type, 4) + data;
    png += typed;
    appendBigEndian(png, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef *>(typed.data()), typed.size())));
  };
  std::string header;
  appendBigEndian(header, width);
  appendBigEndian(header, height);
  header += std::string("\x08\x02\x00\x00\x00", 5); // 8 bits, RGB, deflate, no filter, no interlace
  appendChunk("IHDR", header);
  appendChunk("IDAT", std::string(reinterpret_cast<const char *>(compressed.data()), compressedSize));
  appendChunk("IEND", std::string());
  return png;
}
} // namespace

std::string
StageQualityControlPicture(const ImageType * head, const MaskImageType * mask, const std::string & fileName)
{
  using Preprocessing = itk::KDBrainExtractionPreprocessing;
  // Isotropic display grid at the finest input spacing, but no finer than
  // 1 mm: slices of a thick-slice scan are interpolated, not stretched.
  const auto &            spacing = head->GetSpacing();
  const double            displaySpacing = std::max(1.0, std::min({ spacing[0], spacing[1], spacing[2] }));
  Preprocessing::Contract display;
  display.WorkingSpacing = { { displaySpacing, displaySpacing, displaySpacing } };
  display.SizeMultiple = 1;
  const auto grid = Preprocessing::MakeWorkingGrid(head, display);
  const auto grey = Preprocessing::ResampleToReferenceGrid(head, grid);

  auto maskAsFloat = ImageType::New();
  maskAsFloat->CopyInformation(mask);
  maskAsFloat->SetRegions(mask->GetLargestPossibleRegion());
  maskAsFloat->Allocate();
  std::transform(mask->GetBufferPointer(),
                 mask->GetBufferPointer() + mask->GetBufferedRegion().GetNumberOfPixels(),
                 maskAsFloat->GetBufferPointer(),
                 [](unsigned char value) { return value != 0 ? 1.0f : 0.0f; });
  const auto brain = Preprocessing::ResampleToReferenceGrid(maskAsFloat, grid);

  // The slices go through the brain's centre of mass (the volume's centre if
  // the mask is empty).
  const auto            size = grid->GetLargestPossibleRegion().GetSize();
  std::array<double, 3> centre{ { 0.0, 0.0, 0.0 } };
  double                count = 0.0;
  for (unsigned int z = 0; z < size[2]; ++z)
  {
    for (unsigned int y = 0; y < size[1]; ++y)
    {
      for (unsigned int x = 0; x < size[0]; ++x)
      {
        if (brain->GetPixel({ { x, y, z } }) >= 0.5f)
        {
          centre[0] += x;
          centre[1] += y;
          centre[2] += z;
          count += 1.0;
        }
      }
    }
  }
  for (unsigned int axis = 0; axis < 3; ++axis)
  {
    centre[axis] = count > 0.0 ? centre[axis] / count : 0.5 * (size[axis] - 1);
  }
  const auto window = Preprocessing::ComputeIntensityWindow(grey, display);
  // LPS grid: x runs to the patient's left, y to posterior, z to superior.
  const std::vector<Slice> slices{
    CutSlice(grey, brain, window, 2, std::lround(centre[2]), 0, 1, false), // axial
    CutSlice(grey, brain, window, 1, std::lround(centre[1]), 0, 2, true),  // coronal
    CutSlice(grey, brain, window, 0, std::lround(centre[0]), 1, 2, true),  // sagittal
  };

  // Upscaled by a whole factor to about 256 pixels, side by side.
  unsigned int largest = 1;
  for (const auto & slice : slices)
  {
    largest = std::max({ largest, slice.Width, slice.Height });
  }
  const unsigned int     scale = std::max(1u, (256 + largest - 1) / largest);
  constexpr unsigned int gap = 4;
  unsigned int           width = gap;
  unsigned int           height = 0;
  for (const auto & slice : slices)
  {
    width += slice.Width * scale + gap;
    height = std::max(height, slice.Height * scale);
  }
  auto picture = PictureType::New();
  picture->SetRegions(PictureType::SizeType{ { width, height + 2 * gap } });
  picture->Allocate();
  picture->FillBuffer(PictureType::PixelType(static_cast<unsigned char>(0)));
  unsigned int left = gap;
  for (const auto & slice : slices)
  {
    const unsigned int panelWidth = slice.Width * scale;
    const unsigned int panelHeight = slice.Height * scale;
    const unsigned int top = gap + (height - panelHeight) / 2;
    // Inside the brain at an upscaled pixel (nearest source pixel).
    auto inside = [&slice, scale, panelWidth, panelHeight](long u, long v) {
      if (u < 0 || v < 0 || u >= static_cast<long>(panelWidth) || v >= static_cast<long>(panelHeight))
      {
        return false;
      }
      return static_cast<bool>(slice.Brain[static_cast<std::size_t>(v / scale) * slice.Width + u / scale]);
    };
    for (unsigned int v = 0; v < panelHeight; ++v)
    {
      for (unsigned int u = 0; u < panelWidth; ++u)
      {
        const unsigned char    grey = slice.Grey[static_cast<std::size_t>(v / scale) * slice.Width + u / scale];
        PictureType::PixelType pixel(grey);
        const long             x = u;
        const long             y = v;
        const bool             outline =
          inside(x, y) && !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1));
        if (outline)
        {
          pixel.Set(255, 40, 40);
        }
        picture->SetPixel({ { static_cast<itk::IndexValueType>(left + u), static_cast<itk::IndexValueType>(top + v) } },
                          pixel);
      }
    }
    left += panelWidth + gap;
  }
  return itk::KDBrainExtractionOutputFile::StageBytes(EncodePng(picture), fileName, "the QC picture");
}
} // namespace kdbet
