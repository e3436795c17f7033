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
// What kdbet extract and kdbet bids share: the models and settings of a run,
// one volume's extraction and outputs, the progress display and the summary.
#ifndef kdbetCohort_h
#define kdbetCohort_h

#include "itkProcessObject.h"
#include "kdbetCommon.h"

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>

namespace kdbet
{
using Clock = std::chrono::steady_clock;

inline double
SecondsSince(Clock::time_point start)
{
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/** The outputs one volume can have, in the order they are written. */
extern const std::vector<std::string> OutputKinds;

/** One input volume and the files to write for it (output kind -> file). */
struct Job
{
  std::string                        Input;
  std::map<std::string, std::string> Outputs;
};

/** What happened to one volume: a row of the summary. */
struct JobResult
{
  std::string                   Input;
  bool                          Succeeded{ false };
  bool                          Skipped{ false }; // its outputs were there already (kdbet bids)
  std::string                   Message;
  bool                          HasMask{ false }; // the student ran; BrainMillilitres is its volume
  double                        BrainMillilitres{ 0.0 };
  double                        Seconds{ 0.0 };
  std::string                   Device;
  std::map<std::string, double> Stages;
  std::vector<std::string>      Written;
};

/** The name of an input without folder and image extension. */
std::string
InputStem(const std::string & input);

/** Whether a file name has an image extension kdbet reads (hidden files not). */
bool
LooksLikeImage(const std::string & fileName);

/** Progress display: on a terminal, one line redrawn with the volume's bar
 * and the cohort's; otherwise nothing until a volume is done. */
class ProgressDisplay
{
public:
  explicit ProgressDisplay(std::size_t numberOfVolumes);

  /** A display that draws nothing and passes each progress report to
   * \a forward (a worker process reports to the process that draws). */
  explicit ProgressDisplay(std::function<void(const std::string & stage, double fraction)> forward);

  void
  StartVolume(std::size_t index, const std::string & input, const char * stage);

  void
  Watch(itk::ProcessObject * filter, const char * stage);

  void
  FinishVolume(const JobResult & result);

  /** Shows the current volume at \a fraction of \a stage. */
  void
  Show(const std::string & stage, double fraction);

private:
  void
  OnProgress(itk::Object * caller, const itk::EventObject &);

  void
  Draw(double fraction);

  std::size_t                                      m_NumberOfVolumes;
  bool                                             m_Terminal;
  Clock::time_point                                m_Start;
  std::size_t                                      m_Index{ 0 };
  std::size_t                                      m_Done{ 0 };
  std::string                                      m_Label;
  std::string                                      m_Stage;
  std::function<void(const std::string &, double)> m_Forward;
};

/** The models, loaded once for the whole run. */
struct Models
{
  ModelType::Pointer Student;
  ModelType::Pointer Teacher;
  /** The fine stage's model; null when it is off or none is to be had. */
  ModelType::Pointer Refiner;
  std::string        Device;
  unsigned int       Threads{ 0 };
  double             Threshold{ 0.5 };
  bool               Mirror{ false };
  double             Border{ 0.0 };
};

/** Checks the settings of \a models (threshold, border) and loads the models
 * a run needs (the refiner only with \a refine or a refiner file), each on
 * the models' device; a file name left empty means the shipped model. */
void
LoadModels(Models & models, bool needStudent, bool needTeacher, bool refine, const std::string & studentFile,
           const std::string & teacherFile, const std::string & refinerFile);

/** Reads, extracts and writes one volume; throws on any failure, having
 * written nothing under a final name. */
void
RunJob(const Job & job, const Models & models, ProgressDisplay & progress, JobResult & result);

/** Throws a UsageError, before any work, if two outputs of a run (the
 * jobs' files and the summary) are one file, or if an output is an input:
 * names are compared after resolving folders and symbolic links. */
void
CheckOutputsAreNew(const std::vector<Job> & jobs, const std::string & summaryFile);

/** Runs one volume's work: a failure becomes the result's one-line message,
 * which starts with the input's name, instead of ending the cohort; records
 * the seconds since start. */
void
RunAlone(JobResult & result, Clock::time_point start, const std::function<void()> & work);

/** The summary table, CSV or JSON by the file's extension, written
 * atomically. Each row also records the models (checksums) and settings that
 * made it, so that a cohort's outputs can be traced and reproduced. */
void
WriteSummary(const std::vector<JobResult> & results, const Models & models, const std::string & fileName);

/** The summary's rows as JSON objects (input, status, message, brain_ml,
 * seconds, device, stage_seconds, model checksums and settings). */
nlohmann::ordered_json
SummaryRows(const std::vector<JobResult> & results, const Models & models);

/** Writes summary rows as CSV, or JSON for a .json name, atomically. */
void
WriteSummaryRows(const nlohmann::ordered_json & rows, const std::string & fileName);
} // namespace kdbet

#endif // kdbetCohort_h
