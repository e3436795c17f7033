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
#include "kdbetWorker.h"

#include "itkKDBrainExtractionOutputFile.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#  include <sys/prctl.h>
#endif

namespace kdbet
{
namespace
{
using Json = nlohmann::ordered_json;

/** Writes \a message and a newline to \a descriptor; false if the other end
 * is gone. */
bool
WriteLine(int descriptor, const Json & message)
{
  const std::string line = message.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  std::size_t       written = 0;
  while (written < line.size())
  {
    const ssize_t count = ::write(descriptor, line.data() + written, line.size() - written);
    if (count < 0 && errno == EINTR)
    {
      continue;
    }
    if (count <= 0)
    {
      return false;
    }
    written += static_cast<std::size_t>(count);
  }
  return true;
}

/** The next line from \a descriptor, \a buffered holding what was read past
 * it; false at the end of the stream. */
bool
ReadLine(int descriptor, std::string & buffered, std::string & line)
{
  while (true)
  {
    const auto end = buffered.find('\n');
    if (end != std::string::npos)
    {
      line = buffered.substr(0, end);
      buffered.erase(0, end + 1);
      return true;
    }
    char          chunk[65536];
    const ssize_t count = ::read(descriptor, chunk, sizeof(chunk));
    if (count < 0 && errno == EINTR)
    {
      continue;
    }
    if (count <= 0)
    {
      return false;
    }
    buffered.append(chunk, static_cast<std::size_t>(count));
  }
}

Json
ResultToJson(const JobResult & result)
{
  return Json{ { "succeeded", result.Succeeded }, { "message", result.Message },
               { "has_mask", result.HasMask },    { "brain_ml", result.BrainMillilitres },
               { "device", result.Device },       { "stages", result.Stages },
               { "written", result.Written } };
}

void
ResultFromJson(const Json & json, JobResult & result)
{
  result.Succeeded = json.at("succeeded").get<bool>();
  result.Message = json.at("message").get<std::string>();
  result.HasMask = json.at("has_mask").get<bool>();
  result.BrainMillilitres = json.at("brain_ml").get<double>();
  result.Device = json.at("device").get<std::string>();
  result.Stages = json.at("stages").get<std::map<std::string, double>>();
  result.Written = json.at("written").get<std::vector<std::string>>();
}

std::string
FileNameOf(const ModelType * model)
{
  return model ? model->GetFileName() : std::string();
}

std::string
ChecksumOf(const ModelType * model)
{
  return model ? model->GetChecksum() : std::string();
}

/** This executable's path, for starting it anew; empty where it cannot be known. */
std::string
ThisExecutable()
{
#if defined(__linux__)
  char          path[4096];
  const ssize_t length = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (length > 0)
  {
    return std::string(path, static_cast<std::size_t>(length));
  }
#endif
  return std::string();
}
} // namespace

JobRunner::JobRunner(const Models & models, bool isolate)
  : m_Models(models)
  , m_Executable(isolate ? ThisExecutable() : std::string())
{
  if (IsIsolated())
  {
    // A worker that dies closes its pipe: writing to it must be an error to
    // handle, not a SIGPIPE that ends the whole run.
    std::signal(SIGPIPE, SIG_IGN);
  }
}

JobRunner::~JobRunner()
{
  Stop();
}

void
JobRunner::Start()
{
  int requests[2];
  int replies[2];
  if (::pipe2(requests, O_CLOEXEC) != 0)
  {
    throw std::runtime_error(std::string("cannot start a worker process (") + std::strerror(errno) + ")");
  }
  if (::pipe2(replies, O_CLOEXEC) != 0)
  {
    const int error = errno;
    ::close(requests[0]);
    ::close(requests[1]);
    throw std::runtime_error(std::string("cannot start a worker process (") + std::strerror(error) + ")");
  }
  // Everything the child needs is made before fork: between fork and exec
  // only async-signal-safe calls are allowed in a threaded process.
  const std::string         requestsArgument = std::to_string(requests[0]);
  const std::string         repliesArgument = std::to_string(replies[1]);
  const std::string         command = "__worker";
  std::vector<const char *> arguments{
    m_Executable.c_str(), command.c_str(), requestsArgument.c_str(), repliesArgument.c_str(), nullptr
  };
  const pid_t parent = ::getpid();
  const pid_t process = ::fork();
  if (process == 0)
  {
    ::fcntl(requests[0], F_SETFD, 0);
    ::fcntl(replies[1], F_SETFD, 0);
#if defined(__linux__)
    // The worker ends with the run: SIGTERM lets it remove its staged files.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent)
    {
      ::_exit(127);
    }
#endif
    ::execv(m_Executable.c_str(), const_cast<char * const *>(arguments.data()));
    ::_exit(127);
  }
  const int forkError = errno;
  ::close(requests[0]);
  ::close(replies[1]);
  if (process < 0)
  {
    ::close(requests[1]);
    ::close(replies[0]);
    throw std::runtime_error(std::string("cannot start a worker process (") + std::strerror(forkError) + ")");
  }
  m_Process = process;
  m_Requests = requests[1];
  m_Replies = replies[0];
  m_Buffered.clear();

  const ModelType * student = m_Models.Student.GetPointer();
  const ModelType * teacher = m_Models.Teacher.GetPointer();
  const ModelType * refiner = m_Models.Refiner.GetPointer();
  WriteLine(m_Requests,
            Json{ { "student", FileNameOf(student) },
                  { "teacher", FileNameOf(teacher) },
                  { "refiner", FileNameOf(refiner) },
                  { "device", m_Models.Device },
                  { "threads", m_Models.Threads },
                  { "threshold", m_Models.Threshold },
                  { "mirror", m_Models.Mirror },
                  { "border", m_Models.Border } });
  std::string line;
  if (!ReadLine(m_Replies, m_Buffered, line))
  {
    throw std::runtime_error("the worker process " + DescribeEnd() + " before it was ready");
  }
  const Json ready = Json::parse(line, nullptr, false);
  if (ready.is_object() && ready.contains("error"))
  {
    Stop();
    throw std::runtime_error("worker process: " + ready["error"].get<std::string>());
  }
  if (!ready.is_object() || !ready.contains("ready") ||
      ready["ready"] != Json{ { "student", ChecksumOf(student) },
                              { "teacher", ChecksumOf(teacher) },
                              { "refiner", ChecksumOf(refiner) } })
  {
    Stop();
    throw std::runtime_error("the worker process loaded other models than this run (were the files replaced?)");
  }
}

void
JobRunner::Stop()
{
  if (m_Process < 0)
  {
    return;
  }
  DescribeEnd(); // closing the requests ends the worker's loop
}

std::string
JobRunner::DescribeEnd()
{
  ::close(m_Requests);
  ::close(m_Replies);
  m_Requests = m_Replies = -1;
  int status = 0;
  while (::waitpid(static_cast<pid_t>(m_Process), &status, 0) < 0 && errno == EINTR)
  {}
  m_Process = -1;
  if (WIFSIGNALED(status))
  {
    const int signalNumber = WTERMSIG(status);
    return "was ended by signal " + std::to_string(signalNumber) + " (" + ::strsignal(signalNumber) +
           (signalNumber == SIGKILL ? "; out of memory, or a job's limit?" : "") + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

void
JobRunner::Run(const Job & job, ProgressDisplay & progress, JobResult & result)
{
  if (!IsIsolated())
  {
    RunJob(job, m_Models, progress, result);
    return;
  }
  if (m_Process < 0)
  {
    Start();
  }
  // A worker that is gone shows as the end of its replies.
  WriteLine(m_Requests, Json{ { "input", job.Input }, { "outputs", job.Outputs } });
  std::string line;
  while (ReadLine(m_Replies, m_Buffered, line))
  {
    const Json reply = Json::parse(line, nullptr, false);
    if (reply.is_object() && reply.contains("progress"))
    {
      progress.Show(reply.value("stage", std::string()), reply["progress"].get<double>());
      continue;
    }
    if (!reply.is_object() || !reply.contains("result"))
    {
      Stop();
      throw std::runtime_error("the worker process replied what this kdbet does not understand");
    }
    ResultFromJson(reply["result"], result);
    if (!result.Succeeded)
    {
      throw std::runtime_error(result.Message);
    }
    return;
  }
  const long long   process = m_Process;
  const std::string end = DescribeEnd();
  for (const auto & output : job.Outputs)
  {
    itk::KDBrainExtractionOutputFile::RemoveTemporariesOf(output.second, process);
  }
  throw std::runtime_error(job.Input + ": the worker process " + end +
                           " while working on this volume; its temporary files were removed");
}

int
Worker(int argc, char * argv[])
{
  if (argc != 2)
  {
    throw UsageError("__worker is started by kdbet itself, with two file descriptors");
  }
  const int   requests = std::stoi(argv[0]);
  const int   replies = std::stoi(argv[1]);
  std::string buffered;
  std::string line;
  if (!ReadLine(requests, buffered, line))
  {
    return 1;
  }
  const Json setup = Json::parse(line);
  Models     models;
  models.Device = setup.at("device").get<std::string>();
  models.Threads = setup.at("threads").get<unsigned int>();
  models.Threshold = setup.at("threshold").get<double>();
  models.Mirror = setup.at("mirror").get<bool>();
  models.Border = setup.at("border").get<double>();
  const auto student = setup.at("student").get<std::string>();
  const auto teacher = setup.at("teacher").get<std::string>();
  const auto refiner = setup.at("refiner").get<std::string>();
  try
  {
    LoadModels(models, !student.empty(), !teacher.empty(), !refiner.empty(), student, teacher, refiner);
  }
  catch (const itk::ExceptionObject & error)
  {
    WriteLine(replies, Json{ { "error", itk::KDBrainExtractionInputFile::DescribeError(error) } });
    return 1;
  }
  catch (const std::exception & error)
  {
    WriteLine(replies, Json{ { "error", error.what() } });
    return 1;
  }
  WriteLine(replies,
            Json{ { "ready",
                    Json{ { "student", ChecksumOf(models.Student.GetPointer()) },
                          { "teacher", ChecksumOf(models.Teacher.GetPointer()) },
                          { "refiner", ChecksumOf(models.Refiner.GetPointer()) } } } });
  ProgressDisplay progress([replies](const std::string & stage, double fraction) {
    WriteLine(replies, Json{ { "progress", fraction }, { "stage", stage } });
  });
  while (ReadLine(requests, buffered, line))
  {
    const Json request = Json::parse(line);
    Job        job;
    job.Input = request.at("input").get<std::string>();
    job.Outputs = request.at("outputs").get<std::map<std::string, std::string>>();
    JobResult result;
    result.Input = job.Input;
    RunAlone(result, Clock::now(), [&] { RunJob(job, models, progress, result); });
    if (!WriteLine(replies, Json{ { "result", ResultToJson(result) } }))
    {
      return 1; // the run is gone
    }
  }
  return 0;
}
} // namespace kdbet
