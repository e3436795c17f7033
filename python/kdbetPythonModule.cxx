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
// _kdbet: the module's filters for Python, on NumPy arrays. The Python package
// kdbet (kdbet/__init__.py) adds itk.Image and nibabel support on top.
#include "itkKDBrainExtractionInputFile.h"
#include "itkKDBrainExtractionOutputFile.h"
#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkKDStudentMaskFilter.h"
#include "itkKDTeacherImageFilter.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <cstdio>

namespace py = pybind11;

namespace
{
using ImageType = itk::KDBrainExtractionPreprocessing::ImageType;
using MaskImageType = itk::KDBrainExtractionPreprocessing::MaskImageType;
using ModelType = itk::KDBrainExtractionTorchModel;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

/** Raised for every failure, with the same one-line message as kdbet's. */
PyObject * ExtractionError = nullptr;

/** Geometry in ITK's convention: physical LPS, (x, y, z) order. */
struct Geometry
{
  std::array<double, 3> Spacing{ { 1.0, 1.0, 1.0 } };
  std::array<double, 3> Origin{ { 0.0, 0.0, 0.0 } };
  std::array<double, 9> Direction{ { 1, 0, 0, 0, 1, 0, 0, 0, 1 } };
};

Geometry
ParseGeometry(const py::object & spacing, const py::object & origin, const py::object & direction)
{
  Geometry geometry;
  auto     read = [](const py::object & value, std::size_t count, const char * name) {
    const auto values = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(value);
    if (!values || static_cast<std::size_t>(values.size()) != count)
    {
      throw py::value_error(std::string(name) + " needs " + std::to_string(count) + " numbers");
    }
    return std::vector<double>(values.data(), values.data() + count);
  };
  if (!spacing.is_none())
  {
    const auto values = read(spacing, 3, "spacing");
    for (const double value : values)
    {
      if (!(value > 0.0) || !std::isfinite(value))
      {
        throw py::value_error("array: invalid voxel spacing (" + std::to_string(values[0]) + ", " +
                              std::to_string(values[1]) + ", " + std::to_string(values[2]) +
                              "); must be finite and positive");
      }
    }
    std::copy(values.begin(), values.end(), geometry.Spacing.begin());
  }
  if (!origin.is_none())
  {
    const auto values = read(origin, 3, "origin");
    std::copy(values.begin(), values.end(), geometry.Origin.begin());
  }
  if (!direction.is_none())
  {
    const auto values = read(direction, 9, "direction");
    std::copy(values.begin(), values.end(), geometry.Direction.begin());
  }
  return geometry;
}

/** An ITK image over the array's memory (no copy); \a array must outlive it. */
ImageType::Pointer
WrapArray(const FloatArray & array, const Geometry & geometry)
{
  if (array.ndim() != 3)
  {
    throw py::value_error("array: a " + std::to_string(array.ndim()) +
                          "D array; brain extraction needs one 3D volume indexed [z, y, x]");
  }
  auto                     image = ImageType::New();
  ImageType::SizeType      size;
  ImageType::DirectionType direction;
  for (unsigned int axis = 0; axis < 3; ++axis)
  {
    size[axis] = static_cast<itk::SizeValueType>(array.shape(2 - axis));
    for (unsigned int column = 0; column < 3; ++column)
    {
      direction(axis, column) = geometry.Direction[3 * axis + column];
    }
  }
  image->SetRegions(size);
  image->SetSpacing(geometry.Spacing.data());
  image->SetOrigin(geometry.Origin.data());
  image->SetDirection(direction);
  image->GetPixelContainer()->SetImportPointer(const_cast<float *>(array.data()), array.size(), false);
  return image;
}

/** A NumPy array [z, y, x] that takes over the buffer of \a image. */
template <typename TImage>
py::array
TakeBuffer(TImage * image)
{
  using PixelType = typename TImage::PixelType;
  const auto size = image->GetLargestPossibleRegion().GetSize();
  auto *     container = image->GetPixelContainer();
  container->SetContainerManageMemory(false);
  PixelType * buffer = container->GetImportPointer();
  py::capsule owner(buffer, [](void * pointer) { delete[] static_cast<PixelType *>(pointer); });
  return py::array_t<PixelType>(
    { static_cast<py::ssize_t>(size[2]), static_cast<py::ssize_t>(size[1]), static_cast<py::ssize_t>(size[0]) },
    buffer,
    owner);
}

class Model
{
public:
  Model(const std::string & fileName, const std::string & role, const std::string & device, unsigned int threads)
    : m_Device(device)
    , m_Threads(threads)
  {
    if (threads > ModelType::MaximumNumberOfThreads)
    {
      throw py::value_error("threads must be at most " + std::to_string(ModelType::MaximumNumberOfThreads) + ", got " +
                            std::to_string(threads));
    }
    if (role != "student" && role != "teacher")
    {
      throw py::value_error("role must be 'student' or 'teacher', got '" + role + "'");
    }
    const auto        wanted = role == "teacher" ? ModelType::RoleEnum::Teacher : ModelType::RoleEnum::Student;
    const std::string path = fileName.empty() ? ModelType::FindDefaultModelFile(wanted) : fileName;
    if (path.empty())
    {
      throw std::runtime_error("no default " + role + " model was found (set KDBET_MODEL_DIR or pass a file)");
    }
    m_Model = ModelType::New();
    m_Model->Load(path);
    if (m_Model->GetRole() != wanted)
    {
      throw std::runtime_error(path + ": a " + ModelType::RoleToString(m_Model->GetRole()) + " model, but a " + role +
                               " model is needed here");
    }
    m_Model->SetDevice(device);
    // A student brings the fine stage's refiner along when one is shipped.
    const std::string refinerFile = ModelType::FindDefaultModelFile(ModelType::RoleEnum::Refiner);
    if (wanted == ModelType::RoleEnum::Student && !refinerFile.empty())
    {
      m_Refiner = ModelType::New();
      m_Refiner->Load(refinerFile);
      m_Refiner->SetDevice(device);
    }
  }

  py::dict
  Extract(const FloatArray & array, const py::object & spacing, const py::object & origin, const py::object & direction,
          double threshold, bool mirror, double border, bool refine)
  {
    RequireRole(ModelType::RoleEnum::Student, "extract");
    if (!(threshold > 0.0 && threshold < 1.0))
    {
      throw py::value_error("threshold must be between 0 and 1");
    }
    if (!(std::abs(border) <= 50.0))
    {
      throw py::value_error("border must be a distance in mm between -50 and 50");
    }
    const auto image = WrapArray(array, ParseGeometry(spacing, origin, direction));
    auto       filter = itk::KDStudentMaskFilter<ImageType, MaskImageType>::New();
    filter->SetInput(image);
    filter->SetModel(m_Model);
    filter->SetDevice(m_Device);
    filter->SetNumberOfTorchThreads(m_Threads);
    filter->SetThreshold(threshold);
    filter->SetTestTimeMirroring(mirror);
    filter->SetMaskBorder(border);
    filter->SetBoundaryRefinement(refine && m_Refiner.IsNotNull());
    filter->SetRefinerModel(m_Refiner);
    {
      py::gil_scoped_release release;
      itk::KDBrainExtractionPreprocessing::VerifyImage(image, "array");
      filter->Update();
    }
    py::dict result;
    result["mask"] = TakeBuffer(filter->GetMaskOutput());
    result["probability"] = TakeBuffer(filter->GetProbabilityOutput());
    result["brain"] = TakeBuffer(filter->GetMaskedOutput());
    return result;
  }

  py::array
  PredictBrain(const FloatArray & array, const py::object & spacing, const py::object & origin,
               const py::object & direction, bool mirror)
  {
    RequireRole(ModelType::RoleEnum::Teacher, "predict_brain");
    const auto image = WrapArray(array, ParseGeometry(spacing, origin, direction));
    auto       filter = itk::KDTeacherImageFilter<ImageType, ImageType>::New();
    filter->SetInput(image);
    filter->SetModel(m_Model);
    filter->SetDevice(m_Device);
    filter->SetNumberOfTorchThreads(m_Threads);
    filter->SetTestTimeMirroring(mirror);
    {
      py::gil_scoped_release release;
      itk::KDBrainExtractionPreprocessing::VerifyImage(image, "array");
      filter->Update();
    }
    return TakeBuffer(filter->GetOutput());
  }

  std::string
  GetRole() const
  {
    return ModelType::RoleToString(m_Model->GetRole());
  }
  std::string
  GetFileName() const
  {
    return m_Model->GetFileName();
  }
  std::string
  GetChecksum() const
  {
    return m_Model->GetChecksum();
  }
  std::string
  GetDevice() const
  {
    return m_Model->GetDevice();
  }
  std::map<std::string, std::string>
  GetMetadata() const
  {
    return m_Model->GetAllMetadata();
  }

private:
  void
  RequireRole(ModelType::RoleEnum role, const char * method) const
  {
    if (m_Model->GetRole() != role)
    {
      throw py::value_error(std::string(method) + " needs a " + ModelType::RoleToString(role) + " model; this is a " +
                            GetRole() + " model");
    }
  }

  ModelType::Pointer m_Model;
  ModelType::Pointer m_Refiner; // the shipped refiner of a student, when there is one
  std::string        m_Device;
  unsigned int       m_Threads;
};

/** Reads an image file with ITK: (array [z, y, x] float32, spacing, origin, direction). */
py::tuple
ReadImage(const std::string & fileName)
{
  // The CLI's checks: the file, every header field, the stored voxels.
  ImageType::Pointer image;
  {
    py::gil_scoped_release release;
    image = itk::KDBrainExtractionInputFile::ReadImage(fileName);
  }
  py::list direction;
  for (unsigned int row = 0; row < 3; ++row)
  {
    for (unsigned int column = 0; column < 3; ++column)
    {
      direction.append(image->GetDirection()(row, column));
    }
  }
  const auto & spacing = image->GetSpacing();
  const auto & origin = image->GetOrigin();
  return py::make_tuple(TakeBuffer(image.GetPointer()),
                        py::make_tuple(spacing[0], spacing[1], spacing[2]),
                        py::make_tuple(origin[0], origin[1], origin[2]),
                        direction);
}

/** Writes a [z, y, x] array (float32 or uint8) with ITK, through a temporary name. */
template <typename TPixel>
void
WriteImage(const py::array_t<TPixel, py::array::c_style | py::array::forcecast> & array, const std::string & fileName,
           const py::object & spacing, const py::object & origin, const py::object & direction)
{
  using OutputType = itk::Image<TPixel, 3>;
  if (array.ndim() != 3)
  {
    throw py::value_error("write_image needs a 3D array");
  }
  const Geometry                     geometry = ParseGeometry(spacing, origin, direction);
  auto                               image = OutputType::New();
  typename OutputType::SizeType      size;
  typename OutputType::DirectionType matrix;
  for (unsigned int axis = 0; axis < 3; ++axis)
  {
    size[axis] = static_cast<itk::SizeValueType>(array.shape(2 - axis));
    for (unsigned int column = 0; column < 3; ++column)
    {
      matrix(axis, column) = geometry.Direction[3 * axis + column];
    }
  }
  image->SetRegions(size);
  image->SetSpacing(geometry.Spacing.data());
  image->SetOrigin(geometry.Origin.data());
  image->SetDirection(matrix);
  image->GetPixelContainer()->SetImportPointer(const_cast<TPixel *>(array.data()), array.size(), false);
  // Through a unique temporary name, read back, then renamed: no partial
  // file under the final name, and a full disk is an error.
  py::gil_scoped_release release;
  itk::KDBrainExtractionOutputFile::WriteImage(image.GetPointer(), fileName);
}
} // namespace

PYBIND11_MODULE(_kdbet, module)
{
  module.doc() = "Brain extraction with knowledge-distilled UNet++ networks (ITK + LibTorch); "
                 "arrays are indexed [z, y, x], geometry is ITK's (LPS, x-y-z order).";
  ExtractionError = PyErr_NewException("kdbet._kdbet.ExtractionError", PyExc_RuntimeError, nullptr);
  module.attr("ExtractionError") = py::handle(ExtractionError);
  py::register_exception_translator([](std::exception_ptr pointer) {
    try
    {
      if (pointer)
      {
        std::rethrow_exception(pointer);
      }
    }
    catch (const itk::ExceptionObject & error)
    {
      PyErr_SetString(ExtractionError, itk::KDBrainExtractionInputFile::DescribeError(error).c_str());
    }
  });

  py::class_<Model>(module, "Model")
    .def(py::init<const std::string &, const std::string &, const std::string &, unsigned int>(),
         py::arg("file_name") = "",
         py::arg("role") = "student",
         py::arg("device") = "auto",
         py::arg("threads") = 0,
         "Loads a model file (default: the shipped model of the role) once, for many volumes. "
         "device: auto (CUDA when present), cpu, cuda, cuda:N; threads: CPU threads (0: all cores).")
    .def("extract",
         &Model::Extract,
         py::arg("array"),
         py::arg("spacing") = py::none(),
         py::arg("origin") = py::none(),
         py::arg("direction") = py::none(),
         py::arg("threshold") = 0.5,
         py::arg("mirror") = false,
         py::arg("border") = 0.0,
         py::arg("refine") = false,
         "Student: {'mask': uint8, 'probability': float32, 'brain': float32} on the input's grid. "
         "mirror: also run on the head mirrored left-right and average (twice the network time). "
         "border: move the mask's border out (> 0) or in (< 0) by this many mm. "
         "refine: the fine stage at 1 mm for inputs finer than the working grid, with the shipped refiner.")
    .def("predict_brain",
         &Model::PredictBrain,
         py::arg("array"),
         py::arg("spacing") = py::none(),
         py::arg("origin") = py::none(),
         py::arg("direction") = py::none(),
         py::arg("mirror") = false,
         "Teacher: the brain-only image (float32, input units) on the input's grid. mirror: as for extract.")
    .def_property_readonly("role", &Model::GetRole)
    .def_property_readonly("file_name", &Model::GetFileName)
    .def_property_readonly("checksum", &Model::GetChecksum)
    .def_property_readonly("device", &Model::GetDevice)
    .def_property_readonly("metadata", &Model::GetMetadata);

  module.def("read_image",
             &ReadImage,
             py::arg("file_name"),
             "(array [z, y, x] float32, spacing, origin, direction) of an image file, read with ITK.");
  // Importing a module changes nothing process-wide: the allocator policy is
  // the application's (the interpreter's) choice.
  module.def("retain_freed_memory",
             &ModelType::RetainFreedMemory,
             "Process-wide: keep memory that malloc frees in the process (glibc only). LibTorch's\n"
             "activations are malloc blocks of 10-100 MB; returned to the system and faulted in\n"
             "again they made inference 3x slower on virtual machines. Call it once at the start\n"
             "of a script that extracts many brains; it reserves 1.5 GB of address space.");
  module.def("write_image",
             &WriteImage<float>,
             py::arg("array"),
             py::arg("file_name"),
             py::arg("spacing") = py::none(),
             py::arg("origin") = py::none(),
             py::arg("direction") = py::none());
  module.def("write_image",
             &WriteImage<unsigned char>,
             py::arg("array"),
             py::arg("file_name"),
             py::arg("spacing") = py::none(),
             py::arg("origin") = py::none(),
             py::arg("direction") = py::none());
}
